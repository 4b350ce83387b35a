"""glaciermap: glacier maps, confidences and inventories from satellite imagery.

Implements GlaViTU (Maslov et al., Nat. Commun. 2025), the GeoClassification split-image workflow and the
Karakoram 2 m inventory workflow as a PyTorch Lightning library with a model zoo.
"""

__version__ = "0.1.0"

// glaciermap label: the page's logic (plain JavaScript, no external library).
"use strict";

const state = {
  scene: null, labels: {}, predictions: {}, classes: [], selected: null,
  byCell: new Map(), polygon: null, image: new Image(),
};
const $ = (id) => document.getElementById(id);
const canvas = $("map");
const ctx = canvas.getContext("2d");

function setStatus(text) { $("status").textContent = text; }

async function api(method, url, body) {
  const resp = await fetch(url, {
    method, headers: body ? { "Content-Type": "application/json" } : {},
    body: body ? JSON.stringify(body) : undefined,
  });
  const data = await resp.json();
  if (!resp.ok) { setStatus("error: " + data.error); throw new Error(data.error); }
  return data;
}

function applyLabels(data) {
  state.labels = data.labels; state.version = data.version;
  setStatus(`saved (version ${data.version}, ${Object.keys(state.labels).length} labelled)`);
  draw(); showTile();
}

function colour(cls) { return (state.classes[cls] || { colour: "#888" }).colour; }

function draw() {
  if (!state.scene) return;
  ctx.drawImage(state.image, 0, 0);
  const showL = $("show-labels").checked, showP = $("show-predictions").checked;
  const showC = $("show-confidence").checked, thr = parseFloat($("threshold").value);
  for (const t of state.scene.tiles) {
    const [x, y, w, h] = t.rect, lab = state.labels[t.id], pred = state.predictions[t.id];
    if (showC && pred) {
      ctx.fillStyle = `rgba(255, ${Math.round(255 * (1 - pred[1]))}, 0, 0.45)`;
      ctx.fillRect(x, y, w, h);
    }
    if (showP && pred && pred[1] > thr) {
      ctx.strokeStyle = colour(pred[0]); ctx.setLineDash([4, 3]); ctx.lineWidth = 2;
      ctx.strokeRect(x + 3, y + 3, w - 6, h - 6); ctx.setLineDash([]);
    }
    if (showL && lab) {
      ctx.globalAlpha = 0.45; ctx.fillStyle = colour(lab[0]); ctx.fillRect(x, y, w, h); ctx.globalAlpha = 1;
    }
    ctx.strokeStyle = "rgba(255,255,255,0.35)"; ctx.lineWidth = 1; ctx.strokeRect(x, y, w, h);
  }
  if (state.selected !== null) {
    const t = state.scene.tiles.find((s) => s.id === state.selected);
    ctx.strokeStyle = "#ff0"; ctx.lineWidth = 3; ctx.strokeRect(...t.rect);
  }
  if (state.polygon && state.polygon.length) {
    ctx.strokeStyle = "#0ff"; ctx.lineWidth = 2; ctx.beginPath();
    state.polygon.forEach(([px, py], i) => (i ? ctx.lineTo(px, py) : ctx.moveTo(px, py)));
    ctx.stroke();
  }
}

function drawVario(data) {
  const v = $("vario"), c = v.getContext("2d"), cols = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728"];
  c.clearRect(0, 0, v.width, v.height);
  const all = data.curves.flat(), top = Math.max(...all, 1e-9);
  data.curves.forEach((curve, k) => {
    c.strokeStyle = cols[k]; c.beginPath();
    curve.forEach((val, i) => {
      const x = 4 + (i / Math.max(1, curve.length - 1)) * (v.width - 8);
      const y = v.height - 14 - (val / top) * (v.height - 20);
      i ? c.lineTo(x, y) : c.moveTo(x, y);
    });
    c.stroke(); c.fillStyle = cols[k]; c.fillText(data.directions[k], 4 + 70 * k, v.height - 2);
  });
}

function showTile() {
  const id = state.selected;
  $("tile-id").textContent = id === null ? "–" : id;
  if (id === null) return;
  const lab = state.labels[id], pred = state.predictions[id];
  const name = (c) => (state.classes[c] ? state.classes[c].display : c);
  $("tile-info").textContent = `label: ${lab ? name(lab[0]) : "none"}` +
    (pred ? `; predicted: ${name(pred[0])} (${pred[1].toFixed(2)})` : "");
}

async function select(id) {
  state.selected = id; draw(); showTile();
  $("tile-image").src = `/api/tile/${id}.png`;
  drawVario(await api("GET", `/api/tile/${id}/vario`));
}

async function label(tiles, cls) { applyLabels(await api("POST", "/api/labels", { tiles, label: cls })); }

function tileAt(x, y) {
  return state.scene.tiles.find((t) => x >= t.rect[0] && x < t.rect[0] + t.rect[2] &&
    y >= t.rect[1] && y < t.rect[1] + t.rect[3]);
}

function canvasPoint(ev) {
  const r = canvas.getBoundingClientRect(), k = canvas.width / r.width;  // the canvas may be shown scaled
  return [(ev.clientX - r.left) * k, (ev.clientY - r.top) * k];
}

async function finishPolygon() {
  const pts = state.polygon; state.polygon = null; $("polygon").textContent = "draw polygon";
  if (pts && pts.length >= 3) {
    applyLabels(await api("POST", "/api/labels", { polygon: pts, label: parseInt($("class-picker").value) }));
  } else { draw(); }
}

canvas.addEventListener("click", (ev) => {
  const [x, y] = canvasPoint(ev);
  if (state.polygon) { state.polygon.push([x, y]); draw(); return; }
  const t = tileAt(x, y);
  if (t) select(t.id);
  canvas.focus();
});
canvas.addEventListener("dblclick", (ev) => { if (state.polygon) { ev.preventDefault(); finishPolygon(); } });

document.addEventListener("keydown", (ev) => {
  if (ev.target.tagName === "INPUT" || ev.target.tagName === "SELECT") return;
  if ((ev.ctrlKey || ev.metaKey) && ev.key === "z") { ev.preventDefault(); undo(); return; }
  if (state.polygon && ev.key === "Enter") { finishPolygon(); return; }
  if (state.polygon && ev.key === "Escape") { state.polygon = null; draw(); return; }
  if (state.selected === null) return;
  if (/^[0-9]$/.test(ev.key) && parseInt(ev.key) < state.classes.length) {
    label([state.selected], parseInt(ev.key)); return;
  }
  if (ev.key === "Backspace" || ev.key === "Delete") { label([state.selected], null); return; }
  const step = { ArrowLeft: [0, -1], ArrowRight: [0, 1], ArrowUp: [-1, 0], ArrowDown: [1, 0] }[ev.key];
  if (step) {
    ev.preventDefault();
    const t = state.scene.tiles.find((s) => s.id === state.selected);
    const next = state.byCell.get(`${t.row + step[0]},${t.col + step[1]}`);
    if (next !== undefined) select(next);
  }
});

async function undo() { applyLabels(await api("POST", "/api/undo")); }

function fillClasses() {
  const picker = $("class-picker"), legend = $("legend"), keep = picker.value;
  picker.innerHTML = ""; legend.innerHTML = "";
  for (const c of state.classes) {
    const opt = document.createElement("option");
    opt.value = c.id; opt.textContent = `${c.id < 10 ? c.id + ": " : ""}${c.display}`; picker.appendChild(opt);
    const li = document.createElement("li"), sw = document.createElement("span");
    sw.style.background = c.colour; li.appendChild(sw); li.append(`${c.id} ${c.display}`); legend.appendChild(li);
  }
  if (keep) picker.value = keep;
}

function wire() {
  for (const id of ["show-labels", "show-predictions", "show-confidence"]) $(id).addEventListener("change", draw);
  $("threshold").addEventListener("input", () => {
    $("threshold-value").textContent = parseFloat($("threshold").value).toFixed(2); draw();
  });
  $("apply-class").onclick = () => state.selected !== null && label([state.selected], parseInt($("class-picker").value));
  $("clear-label").onclick = () => state.selected !== null && label([state.selected], null);
  $("undo").onclick = undo;
  $("polygon").onclick = () => {
    if (state.polygon) { finishPolygon(); return; }
    state.polygon = []; $("polygon").textContent = "finish polygon"; canvas.focus();
  };
  $("add-class").onclick = async () => {
    const data = await api("POST", "/api/classes", { name: $("new-class").value });
    state.classes = data.classes; fillClasses(); $("class-picker").value = data.id; setStatus("class added");
  };
  $("accept-tile").onclick = async () => {
    if (state.selected !== null) applyLabels(await api("POST", "/api/accept", { tile: state.selected }));
  };
  $("accept-all").onclick = async () =>
    applyLabels(await api("POST", "/api/accept", { threshold: parseFloat($("threshold").value) }));
  for (const b of document.querySelectorAll("[data-export]")) {
    b.onclick = async () => {
      const data = await api("POST", `/api/export/${b.dataset.export}`, {
        out: $("export-out").value, threshold: parseFloat($("threshold").value),
      });
      setStatus(`exported ${data.rows} tiles to ${data.out}`);
    };
  }
}

async function load() {
  const scene = await api("GET", "/api/scene");
  state.scene = scene; state.classes = scene.classes; state.predictions = scene.predictions;
  for (const t of scene.tiles) state.byCell.set(`${t.row},${t.col}`, t.id);
  canvas.width = scene.quicklook.width; canvas.height = scene.quicklook.height;
  $("image-name").textContent = scene.image;
  fillClasses(); wire();
  state.image.onload = () => { applyLabels(scene); document.body.dataset.ready = "1"; };
  state.image.src = scene.quicklook.url;
  // another tab or server may change the table: pick its changes up
  setInterval(async () => {
    const resp = await fetch("/api/labels");
    if (resp.ok) { const data = await resp.json(); if (data.version !== state.version) applyLabels(data); }
  }, 3000);
}

load();

// The i2i web UI: choose files and a model, send a job, poll its progress, compare before/after.
// Plain JavaScript, no build step and nothing loaded from the network.
"use strict";

const $ = (id) => document.getElementById(id);
const state = { files: [], job: null, items: [], selected: 0, zoom: "fit", split: 0.5 };
const POLL_MS = 400;

function showError(message) {
  $("error").textContent = message || "";
  $("error").hidden = !message;
}

async function readJson(response) {
  const text = await response.text();
  try {
    return JSON.parse(text);
  } catch (e) {
    return { error: text || `${response.status} ${response.statusText}` };
  }
}

// ---------------------------------------------------------------- models

async function loadModels() {
  const response = await fetch("/api/models");
  const data = await readJson(response);
  if (!response.ok) return showError(data.error);
  const groups = { bundled: "Bundled", files: "Model files (--root)", pretrained: "Pretrained (downloaded on first use)" };
  const select = $("model");
  for (const [group, title] of Object.entries(groups)) {
    const models = data.models.filter((m) => m.group === group);
    if (!models.length) continue;
    const optgroup = document.createElement("optgroup");
    optgroup.label = title;
    for (const model of models) {
      const option = new Option(model.label, model.spec);
      option.dataset.note = model.note;
      optgroup.append(option);
    }
    select.append(optgroup);
  }
  select.value = "x4";
  $("path-field").hidden = data.roots.length === 0;
  state.limits = data;
  describeModel();
  updateRun();
}

function describeModel() {
  const option = $("model").selectedOptions[0];
  $("model-note").textContent = option ? option.dataset.note || "" : "";
}

// ---------------------------------------------------------------- choosing files

function chooseFiles(files) {
  state.files = Array.from(files);
  const names = state.files.map((f) => f.name);
  $("chosen").textContent = names.length === 0 ? "or click to choose files"
    : names.length === 1 ? names[0] : `${names.length} files: ${names.slice(0, 3).join(", ")}${names.length > 3 ? " …" : ""}`;
  showError("");
  updateRun();
}

function updateRun() {
  const hasInput = state.files.length > 0 || $("path").value.trim() !== "";
  const busy = state.job && ["queued", "running"].includes(state.job.state);
  $("run").disabled = !hasInput || !$("model").value || busy;
}

function setUpDropZone() {
  const zone = $("drop-zone");
  $("file-input").addEventListener("change", (e) => chooseFiles(e.target.files));
  for (const name of ["dragenter", "dragover"]) {
    zone.addEventListener(name, (e) => { e.preventDefault(); zone.classList.add("over"); });
  }
  for (const name of ["dragleave", "drop"]) {
    zone.addEventListener(name, (e) => { e.preventDefault(); zone.classList.remove("over"); });
  }
  zone.addEventListener("drop", (e) => chooseFiles(e.dataTransfer.files));
  // A file dropped anywhere else must not make the browser leave the page.
  window.addEventListener("dragover", (e) => e.preventDefault());
  window.addEventListener("drop", (e) => { e.preventDefault(); if (e.dataTransfer.files.length) chooseFiles(e.dataTransfer.files); });
}

// ---------------------------------------------------------------- jobs

async function run() {
  showError("");
  const form = new FormData();
  for (const file of state.files) form.append("files", file, file.name);
  if (!state.files.length) form.append("path", $("path").value.trim());
  for (const key of ["model", "outscale", "tile", "precision"]) form.append(key, $(key).value);
  $("run").disabled = true;
  let response;
  try {
    response = await fetch("/api/jobs", { method: "POST", body: form });
  } catch (e) {
    updateRun();
    return showError(`The server cannot be reached (${e.message}); is i2i serve still running?`);
  }
  const job = await readJson(response);
  if (!response.ok) {
    updateRun();
    return showError(job.error);
  }
  state.job = job;
  showProgress(job);
  poll(job.id);
}

async function poll(id) {
  let job;
  try {
    const response = await fetch(`/api/jobs/${id}`);
    job = await readJson(response);
    if (!response.ok) throw new Error(job.error);
  } catch (e) {
    state.job = null;
    updateRun();
    return showError(e.message);
  }
  state.job = job;
  showProgress(job);
  if (job.state === "queued" || job.state === "running") {
    setTimeout(() => poll(id), POLL_MS);
    return;
  }
  updateRun();
  if (job.state === "failed") showError(job.message);
  showResults(job);
}

function formatSeconds(s) {
  if (!isFinite(s)) return "";
  return s < 60 ? `${Math.round(s)} s` : `${Math.floor(s / 60)} min ${Math.round(s % 60)} s`;
}

function showProgress(job) {
  $("progress-box").hidden = false;
  const fill = $("progress");
  const unit = job.kind === "video" ? "frames" : job.total === 1 ? "image" : "images";
  let text;
  if (job.state === "queued") {
    text = job.position > 0 ? `Waiting: ${job.position} job(s) ahead` : "Starting…";
  } else if (job.state === "running") {
    const rate = job.rate;  // per second since the first image or frame, model loading left out
    const eta = rate > 0 && job.total ? formatSeconds((job.total - job.done) / rate) : "";
    text = `${job.done} / ${job.total || "?"} ${unit}`;
    if (job.kind === "video" && rate > 0) text += ` · ${rate.toFixed(1)} frames/s`;
    if (eta) text += ` · about ${eta} left`;
    if (job.done === 0) text = job.kind === "video" ? "Loading the model and the video…" : "Working…";
  } else if (job.state === "done") {
    const failed = job.items.filter((item) => item.error).length;
    text = `Done: ${job.done} ${unit} in ${formatSeconds(job.elapsed)}${failed ? ` (${failed} failed)` : ""}`;
  } else {
    text = "Failed";
  }
  const known = job.total > 0 && job.done > 0;
  fill.classList.toggle("busy", (job.state === "running" && !known) || job.state === "queued");
  fill.style.width = job.state === "done" ? "100%" : known ? `${(100 * job.done) / job.total}%` : "0";
  $("status").textContent = text;
  $("notes").replaceChildren(...job.notes.map((note) => Object.assign(document.createElement("li"), { textContent: note })));
}

// ---------------------------------------------------------------- results

function showResults(job) {
  state.items = job.items;
  const gallery = $("gallery");
  gallery.replaceChildren();
  if (!job.items.some((item) => item.result_url)) return;
  $("empty").hidden = true;
  $("result-box").hidden = false;
  if (job.kind === "images" && job.items.length > 1) {
    job.items.forEach((item, index) => {
      const thumb = document.createElement("div");
      thumb.className = "thumb" + (item.error ? " failed" : "");
      thumb.title = item.error || item.name;
      const img = document.createElement("img");
      if (item.result_url) img.src = item.result_url;
      thumb.append(img, Object.assign(document.createElement("span"), { textContent: item.name }));
      thumb.addEventListener("click", () => select(index));
      gallery.append(thumb);
    });
  }
  select(Math.max(0, job.items.findIndex((item) => item.result_url)));
}

function select(index) {
  state.selected = index;
  const item = state.items[index];
  Array.from($("gallery").children).forEach((thumb, i) => thumb.classList.toggle("selected", i === index));
  const isVideo = state.job.kind === "video";
  $("viewer-wrap").hidden = isVideo || !item.result_url;
  $("result-video").hidden = !isVideo;
  const size = item.result_width ? ` · ${item.width}×${item.height} → ${item.result_width}×${item.result_height}` : "";
  $("result-name").textContent = item.error ? `${item.name}: ${item.error}` : `${item.name}${size}`;
  const download = $("download");
  download.hidden = !item.result_url;
  if (item.result_url) {
    download.href = item.result_url;
    download.download = item.download_name;
  }
  if (isVideo) {
    $("result-video").src = item.result_url;
    return;
  }
  if (!item.result_url) return;
  const result = $("result-image");
  result.onload = () => applyZoom();
  result.src = item.result_url;
  $("before-image").src = item.input_url;
  setSplit(0.5);
}

// ---------------------------------------------------------------- before/after and zoom

function setSplit(fraction) {
  state.split = Math.min(1, Math.max(0, fraction));
  const percent = 100 * state.split;
  $("before-image").style.clipPath = `inset(0 ${100 - percent}% 0 0)`;
  $("divider").style.left = `${percent}%`;
}

function fitZoom() {
  const viewer = $("viewer");
  const image = $("result-image");
  if (!image.naturalWidth) return 1;
  return Math.min((viewer.clientWidth - 2) / image.naturalWidth, (viewer.clientHeight - 2) / image.naturalHeight);
}

function applyZoom(anchor) {
  const image = $("result-image");
  if (!image.naturalWidth) return;
  const viewer = $("viewer");
  const stage = $("stage");
  const before = { width: stage.offsetWidth || 1, left: viewer.scrollLeft, top: viewer.scrollTop };
  const zoom = state.zoom === "fit" ? fitZoom() : state.zoom;
  stage.style.width = `${Math.round(image.naturalWidth * zoom)}px`;
  stage.style.height = `${Math.round(image.naturalHeight * zoom)}px`;
  stage.classList.toggle("pixels", zoom >= 2);
  anchor = anchor || { x: viewer.clientWidth / 2, y: viewer.clientHeight / 2 };
  if (stage.offsetWidth !== before.width) {  // keep the point under the cursor (or the centre) in place
    const ratio = stage.offsetWidth / before.width;
    viewer.scrollLeft = (before.left + anchor.x) * ratio - anchor.x;
    viewer.scrollTop = (before.top + anchor.y) * ratio - anchor.y;
  }
  document.querySelectorAll(".zoom button").forEach((b) => b.classList.toggle("active", b.dataset.zoom === String(state.zoom)));
}

function setUpViewer() {
  const stage = $("stage");
  const move = (e) => {
    const box = stage.getBoundingClientRect();
    setSplit((e.clientX - box.left) / box.width);
  };
  stage.addEventListener("pointerdown", (e) => { stage.setPointerCapture(e.pointerId); move(e); });
  stage.addEventListener("pointermove", (e) => { if (stage.hasPointerCapture(e.pointerId)) move(e); });
  $("viewer").addEventListener("wheel", (e) => {
    if (!$("result-image").naturalWidth) return;
    e.preventDefault();
    const current = state.zoom === "fit" ? fitZoom() : state.zoom;
    state.zoom = Math.min(16, Math.max(fitZoom() / 2, current * (e.deltaY < 0 ? 1.25 : 0.8)));
    const box = $("viewer").getBoundingClientRect();
    applyZoom({ x: e.clientX - box.left, y: e.clientY - box.top });
  }, { passive: false });
  document.querySelectorAll(".zoom button").forEach((button) => button.addEventListener("click", () => {
    state.zoom = button.dataset.zoom === "fit" ? "fit" : Number(button.dataset.zoom);
    applyZoom();
  }));
  window.addEventListener("resize", () => { if (state.zoom === "fit") applyZoom(); });
}

window.addEventListener("DOMContentLoaded", () => {
  setUpDropZone();
  setUpViewer();
  $("model").addEventListener("change", () => { describeModel(); updateRun(); });
  $("path").addEventListener("input", updateRun);
  $("run").addEventListener("click", run);
  loadModels().catch((e) => showError(`Cannot list the models: ${e.message}`));
});

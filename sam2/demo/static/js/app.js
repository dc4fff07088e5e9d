// The demo page: wires the viewer, timeline, object list, prompts, tracking and exports to the API.

import { api } from "./api.js";
import { Annotations } from "./annotations.js";
import { FrameStore } from "./frames.js";
import { hsl, ObjectList } from "./objects.js";
import { installOpening, renderGallery } from "./opening.js";
import { Prompting } from "./prompting.js";
import { exportSession, keepEverythingMask, segmentEverything } from "./results.js";
import { installShortcuts, renderHelp } from "./shortcuts.js";
import { Timeline } from "./timeline.js";
import { Tracker } from "./tracking.js";
import { Messages } from "./ui.js";
import { Viewer } from "./viewer.js";

const $ = (selector) => document.querySelector(selector);

const state = {
  info: null,
  session: null, // {session_id, kind, name, num_frames, width, height, fps}
  frame: 0,
  frames: null, // FrameStore
  notes: new Annotations(),
  negative: false,
  opacity: 0.55,
  showToken: 0,
};

const messages = new Messages($("#message"), $("#status"));
const objects = new ObjectList($("#object-list"), {
  select: (id) => selectObject(id),
  rename: () => objects.render(),
  toggle: (id) => toggleHidden(id),
  remove: (id) => removeObject(id),
});
const prompting = new Prompting({ state, objects, messages, redraw, currentObject });
const viewer = new Viewer($("#stage"), {
  point: (x, y, keys) => {
    if (keys.alt) keepEverythingMask(x, y, { state, messages, addObject, prompting });
    else prompting.addPoint(x, y, keys.shift);
  },
  box: (box) => prompting.setBox(box),
  stroke: (points, radius, erase) => prompting.paint(points, radius, erase),
});
const timeline = new Timeline($("#timeline"), showFrame);
const tracker = new Tracker({ progress: $("#track-progress"), label: $("#track-label") }, {
  frame: onTrackedFrame,
  finished: onTrackingFinished,
  status: (text) => messages.setStatus(text),
});

// ---- session -------------------------------------------------------------------------------------

async function openSession(label, opener) {
  if (tracker.running) await tracker.cancel();
  let session;
  try {
    session = await messages.withModel(label, opener);
  } catch {
    return;
  }
  const previous = state.session;
  if (previous) api.closeSession(previous.session_id).catch(() => {});
  messages.dismiss();
  timeline.stop();
  Object.assign(state, { session, notes: new Annotations(), frame: 0 });
  state.frames = new FrameStore((i) => api.frameUrl(session.session_id, i), session.num_frames);
  objects.reset();
  objects.add();
  viewer.strokeColor = objects.selected.color;
  viewer.resize(session.width, session.height);
  viewer.enabled = true;
  Object.assign(document.body.dataset, { kind: session.kind, sessionId: session.session_id });
  $("#empty-state").hidden = true;
  $("#timeline").hidden = session.kind !== "video";
  timeline.setVideo(session.num_frames, session.fps);
  tracker.setProgress(0, 1, "Click on objects, then track them.");
  $("#everything-label").textContent = "";
  for (const a of document.querySelectorAll("a.export")) {
    a.href = api.exportUrl(session.session_id, a.dataset.format);
    a.removeAttribute("aria-disabled");
  }
  updateControls();
  await showFrame(0);
  messages.setStatus(`Opened ${session.name}: ${session.width}×${session.height}` +
    (session.kind === "video" ? `, ${session.num_frames} frames` : ""));
}

function uploadFile(file) {
  const limit = state.info?.limits?.max_upload_mb;
  if (limit && file.size > limit * 1024 * 1024) {
    const size = (file.size / 1048576).toFixed(1);
    messages.error(`“${file.name}” is ${size} MB; this server accepts uploads up to ${limit} MB.`);
    return;
  }
  openSession(`Uploading and decoding ${file.name}`, () => api.upload(file));
}

// ---- frames and drawing --------------------------------------------------------------------------

/** Show frame `idx` with its masks and prompts; resolves when drawn (or superseded). */
async function showFrame(idx) {
  if (!state.session) return;
  const token = ++state.showToken;
  state.frame = idx;
  timeline.showing(idx);
  state.frames.prefetch(idx);
  try {
    const image = await state.frames.get(idx);
    if (token !== state.showToken) return;
    viewer.showImage(image);
    redraw();
  } catch (err) {
    if (token === state.showToken) messages.error(err.message);
  }
}

function redraw() {
  if (!state.session) return;
  const frame = state.frame;
  const layers = [];
  if ($("#show-everything").checked) {
    (state.notes.everything.get(frame) || []).forEach((m, i) =>
      layers.push({ rle: m.rle, color: hsl((200 + i * 137.508) % 360, 0.75, 0.55) }));
  }
  const masks = state.notes.masksOn(frame);
  for (const object of objects.objects) {
    const mask = masks.get(object.id);
    if (mask && !object.hidden) layers.push({ rle: mask.rle, color: object.color });
  }
  viewer.showMasks(layers, state.opacity);
  viewer.showPrompts(state.notes.promptsOnFrame(frame).map((p) => {
    const object = objects.get(p.objectId);
    if (!object || object.hidden) return null;
    return { ...p, color: object.color, selected: object.id === objects.selectedId };
  }).filter(Boolean));
  drawStrip();
  $("#object-count").textContent = objects.objects.length ? String(objects.objects.length) : "";
}

function drawStrip() {
  if (state.session?.kind !== "video") return;
  const rows = objects.objects.filter((o) => !o.hidden).map((o) => ({
    color: `rgb(${o.color.join(",")})`,
    has: (i) => state.notes.masksOn(i).has(o.id),
  }));
  timeline.drawStrip(rows, state.notes.framesWithPrompts());
}

// ---- objects -------------------------------------------------------------------------------------

function currentObject() {
  return objects.selected || addObject();
}

function selectObject(id) {
  objects.select(id);
  if (objects.selected) viewer.strokeColor = objects.selected.color;
  redraw();
}

function addObject() {
  if (!state.session) return null;
  const limit = state.info?.limits?.max_objects;
  if (limit && objects.objects.length >= limit) {
    messages.error(`This server allows at most ${limit} objects per session (remove one to add another).`);
    return null;
  }
  const object = objects.add();
  selectObject(object.id);
  return object;
}

function removeObject(id) {
  const sid = state.session?.session_id;
  if (!sid) return;
  if (tracker.running) {
    messages.notice("Cancel or wait for tracking before removing an object.");
    return;
  }
  const drop = () => {
    state.notes.removeObject(id);
    objects.remove(id);
    if (objects.selected) viewer.strokeColor = objects.selected.color;
    redraw();
  };
  if (!state.notes.prompted.has(id)) {
    drop();
    return;
  }
  prompting.enqueue(async () => {
    try {
      await messages.withModel("Removing object", () => api.removeObject(sid, id));
    } catch (err) {
      if (err.status !== 404) throw err; // 404: the server had already dropped it (no prompts left)
      messages.dismiss();
    }
    drop();
  });
}

function toggleHidden(id) {
  const object = objects.get(id);
  if (!object) return;
  object.hidden = !object.hidden;
  objects.render();
  redraw();
}

// ---- tracking, segment everything, export ------------------------------------------------------

async function track() {
  if (!state.session || state.session.kind !== "video" || tracker.running) return;
  await prompting.queue; // the last click's answer first
  if (!state.notes.prompted.size) {
    messages.error("Add a point, a box or a painted mask on at least one object before tracking.");
    return;
  }
  timeline.stop();
  const here = state.notes.promptsOnFrame(state.frame).length ? state.frame : null;
  messages.dismiss();
  updateControls(true);
  await tracker.start(state.session.session_id, $("#direction").value, here);
}

function onTrackedFrame(data) {
  state.notes.replaceFrameMasks({ frame: data.frame, masks: data.masks });
  if ($("#follow-tracking").checked) showFrame(data.frame);
  else if (data.frame === state.frame) redraw();
  else drawStrip();
}

function onTrackingFinished(kind, data) {
  updateControls(false);
  if (kind === "error") messages.error(data.detail || "Tracking failed.");
  else if (kind === "cancelled") messages.notice("Tracking was cancelled; the masks computed so far stay.");
  redraw();
}

function everything() {
  if (!tracker.running) segmentEverything({ state, messages, redraw });
}

function exportAs(event) {
  event.preventDefault();
  exportSession(event.currentTarget.dataset.format, { state, messages });
}

// ---- controls ------------------------------------------------------------------------------------

function updateControls(tracking = tracker.running) {
  const open = Boolean(state.session);
  $("#track-button").disabled = !open || tracking;
  $("#cancel-button").disabled = !tracking;
  $("#add-object").disabled = !open;
  $("#everything-button").disabled = !open || tracking;
  document.body.classList.toggle("tracking", tracking);
}

function setOpacity(percent) {
  const value = Math.max(0, Math.min(100, percent));
  $("#opacity").value = String(value);
  $("#opacity-value").textContent = `${value}%`;
  state.opacity = value / 100;
  redraw();
}

function setNegative(negative) {
  state.negative = negative;
  $("#mode-positive").setAttribute("aria-pressed", String(!negative));
  $("#mode-negative").setAttribute("aria-pressed", String(negative));
}

function setTool(tool) {
  viewer.tool = tool;
  $("#tool-prompt").setAttribute("aria-pressed", String(tool === "prompt"));
  $("#tool-brush").setAttribute("aria-pressed", String(tool === "brush"));
  $("#prompt-options").hidden = tool !== "prompt";
  $("#brush-options").hidden = tool !== "brush";
  document.body.dataset.tool = tool;
}

function setBrushSize(size) {
  viewer.brushSize = size;
  $("#brush-size-value").textContent = `${size} px`;
}

function installControls() {
  const on = (selector, type, handler) => $(selector).addEventListener(type, handler);
  on("#add-object", "click", addObject);
  on("#mode-positive", "click", () => setNegative(false));
  on("#mode-negative", "click", () => setNegative(true));
  on("#tool-prompt", "click", () => setTool("prompt"));
  on("#tool-brush", "click", () => setTool("brush"));
  on("#brush-size", "input", () => setBrushSize(Number($("#brush-size").value)));
  on("#undo-point", "click", () => prompting.undo());
  on("#clear-frame", "click", () => prompting.clearFrame());
  on("#opacity", "input", () => setOpacity(Number($("#opacity").value)));
  on("#track-button", "click", track);
  on("#cancel-button", "click", () => tracker.cancel());
  on("#everything-button", "click", everything);
  on("#show-everything", "change", redraw);
  on("#help-button", "click", () => $("#help-dialog").showModal());
  for (const a of document.querySelectorAll("a.export")) a.addEventListener("click", exportAs);
  installOpening({ fileInput: $("#file-input"), dropOverlay: $("#drop-overlay") }, { file: uploadFile });
  renderHelp($("#help-rows"));
  installShortcuts({
    togglePlay: () => timeline.toggle(),
    step: (e) => timeline.step((e.key === "ArrowLeft" ? -1 : 1) * (e.shiftKey ? 10 : 1)),
    jump: (e) => { timeline.stop(); showFrame(e.key === "Home" ? 0 : Math.max(0, timeline.count - 1)); },
    addObject,
    removeObject: () => objects.selected && removeObject(objects.selectedId),
    selectIndex: (e) => { const o = objects.objects[Number(e.key) - 1]; if (o) selectObject(o.id); },
    toggleHidden: () => objects.selected && toggleHidden(objects.selectedId),
    toggleNegative: () => setNegative(!state.negative),
    toggleBrush: () => setTool(viewer.tool === "brush" ? "prompt" : "brush"),
    undo: () => prompting.undo(),
    clearFrame: () => prompting.clearFrame(),
    track,
    everything,
    opacity: (e) => setOpacity(Math.round(state.opacity * 100) + (e.key === "]" ? 10 : -10)),
    escape: () => { if (!viewer.cancelDrag()) tracker.cancel(); },
    help: () => $("#help-dialog").showModal(),
  });
  window.addEventListener("resize", () => redraw());
  window.addEventListener("pagehide", () => {
    if (!state.session) return;
    fetch(`/api/sessions/${state.session.session_id}`, { method: "DELETE", keepalive: true });
  });
}

async function init() {
  installControls();
  updateControls();
  try {
    state.info = await api.info();
  } catch (err) {
    messages.error(err.message);
    renderGallery($("#gallery"), [], () => {});
    return;
  }
  const { limits } = state.info;
  $("#model-info").textContent = `${state.info.model} · ${state.info.device}`;
  $("#limits-label").textContent =
    `Up to ${limits.max_upload_mb} MB, ${limits.max_frames} frames, ${limits.max_objects} objects`;
  const openSample = (id) => openSession("Opening sample", () => api.openSample(id));
  renderGallery($("#gallery"), state.info.samples || [], openSample);
  document.body.dataset.ready = "true";
}

init();

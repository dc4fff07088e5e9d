// Results beyond clicks and tracking: "segment everything" on the shown frame (and keeping one of its
// masks as an object), and the exports.

import { api, request } from "./api.js";
import { download } from "./opening.js";
import { maskOf } from "./overlay.js";

const $ = (selector) => document.querySelector(selector);

/** Run the automatic mask generator on the shown frame with the settings of the panel. */
export async function segmentEverything({ state, messages, redraw }) {
  if (!state.session) return;
  const sid = state.session.session_id;
  const body = {
    frame: state.frame,
    points_per_side: Number($("#points-per-side").value) || 16,
    pred_iou_thresh: Number($("#iou-thresh").value),
    stability_score_thresh: Number($("#stability-thresh").value),
  };
  try {
    const answer = await messages.withModel("Segmenting everything", () => api.everything(sid, body));
    if (state.session?.session_id !== sid) return;
    state.notes.everything.set(answer.frame, answer.masks);
    $("#show-everything").checked = true;
    $("#everything-label").textContent = `${answer.masks.length} masks on frame ${answer.frame + 1}`;
    if (!answer.masks.length) {
      messages.notice("No mask passed the thresholds: lower them under Settings and try again.");
    }
    redraw();
  } catch {
    /* shown by withModel */
  }
}

/**
 * Alt-click on a "segment everything" mask: keep the smallest one under (x, y) as a new object, sent
 * as that object's mask prompt.
 */
export function keepEverythingMask(x, y, { state, messages, addObject, prompting }) {
  const found = $("#show-everything").checked ? state.notes.everything.get(state.frame) || [] : [];
  const hit = found.filter((m) => maskOf(m.rle).data[y * state.session.width + x])
    .sort((a, b) => a.area - b.area)[0];
  if (!hit) {
    messages.notice("Alt-click on a mask of “Segment everything” to keep it as an object.");
    return;
  }
  const object = addObject();
  if (object) prompting.sendMask(object.id, hit.rle);
}

/** Download the session's masks in `format` (davis | sav | coco | mp4); errors are shown. */
export async function exportSession(format, { state, messages }) {
  if (!state.session) {
    messages.error("Open a video or an image first.");
    return;
  }
  try {
    const url = api.exportUrl(state.session.session_id, format);
    const name = await messages.withModel(`Exporting ${format}`,
      async () => download(await request(url), `export-${format}`));
    messages.setStatus(`Saved ${name}`);
  } catch {
    /* shown by withModel */
  }
}

// Results beyond clicks and tracking: "segment everything" on the shown frame, and the exports.

import { api, request } from "./api.js";
import { download } from "./opening.js";

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
    if (!answer.masks.length) messages.notice("No mask passed the thresholds: lower them under Settings and try again.");
    redraw();
  } catch {
    /* shown by withModel */
  }
}

/** Download the session's masks in `format` (davis | sav | coco | mp4); errors are shown. */
export async function exportSession(format, { state, messages }) {
  if (!state.session) {
    messages.error("Open a video or an image first.");
    return;
  }
  try {
    const url = api.exportUrl(state.session.session_id, format);
    const name = await messages.withModel(`Exporting ${format}`, async () => download(await request(url), `export-${format}`));
    messages.setStatus(`Saved ${name}`);
  } catch {
    /* shown by withModel */
  }
}

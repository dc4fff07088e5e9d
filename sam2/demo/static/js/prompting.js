// Prompts of the selected object on the shown frame: points, a box, or a painted mask. Each change
// sends the object's complete prompts for that frame; the server answers with the frame's masks.

import { api } from "./api.js";
import { applyStroke } from "./brush.js";
import { maskOf } from "./overlay.js";
import { encodeRle } from "./rle.js";

export class Prompting {
  /**
   * @param {object} app  {state, objects, messages, redraw, currentObject}: the page's shared pieces
   */
  constructor(app) {
    this.app = app;
    this.queue = Promise.resolve(); // requests run one after another, in the order of the clicks
  }

  /** Run `job` after the requests before it; resolves when it is done (errors are already shown). */
  enqueue(job) {
    this.queue = this.queue.then(job).catch(() => {});
    return this.queue;
  }

  addPoint(x, y, shift) {
    const object = this.app.currentObject();
    if (!object) return;
    const { state } = this.app;
    const label = state.negative !== shift ? 0 : 1;
    const p = state.notes.promptsOf(state.frame, object.id);
    const points = [...p.points, [x, y]];
    this.update(object.id, { points, labels: [...p.labels, label], box: p.box, mask: false });
  }

  setBox(box) {
    const object = this.app.currentObject();
    if (!object) return;
    const { state } = this.app;
    this.update(object.id, { ...state.notes.promptsOf(state.frame, object.id), box, mask: false });
  }

  undo() {
    const { state, objects } = this.app;
    const object = objects.selected;
    if (!object || !state.session) return;
    const p = state.notes.promptsOf(state.frame, object.id);
    if (p.points.length) {
      this.update(object.id, { ...p, points: p.points.slice(0, -1), labels: p.labels.slice(0, -1) });
    } else if (p.box) {
      this.update(object.id, { ...p, box: null });
    } else if (p.mask) {
      this.update(object.id, { points: [], labels: [], box: null, mask: false });
    }
  }

  clearFrame() {
    const object = this.app.objects.selected;
    if (!object || !this.app.state.session) return;
    this.update(object.id, { points: [], labels: [], box: null, mask: false });
  }

  /** Replace the prompts of (shown frame, object) and send them; the answer brings the masks. */
  update(objectId, prompts) {
    const { state, messages } = this.app;
    const frame = state.frame;
    const sid = state.session.session_id;
    const known = state.notes.prompted.has(objectId);
    state.notes.setPrompts(frame, objectId, prompts);
    this.app.redraw();
    const empty = !prompts.points.length && !prompts.box;
    if (empty && !known) return;
    const { points, labels, box } = prompts;
    const body = { frame, object_id: objectId, points, labels, box, clear_old_points: true };
    this.enqueue(async () => {
      const answer = empty
        ? await messages.withModel("Clearing", () => api.clearFrame(sid, frame, objectId))
        : await messages.withModel("Segmenting", () => api.addPrompts(sid, body));
      this.accept(sid, frame, objectId, answer, !empty);
    });
  }

  /** Paint (or erase) a stroke into the selected object's mask on the shown frame and send the mask. */
  paint(points, radius, erase) {
    const object = this.app.currentObject();
    if (!object) return;
    const { state } = this.app;
    const { width, height } = state.session;
    const current = state.notes.masksOn(state.frame).get(object.id);
    const mask = applyStroke(current ? maskOf(current.rle).data : null, width, height, points, radius, erase);
    this.sendMask(object.id, encodeRle(mask, height, width));
  }

  /** Make `rle` the mask prompt of an object on the shown frame (drawn at once, then as answered). */
  sendMask(objectId, rle) {
    const { state, messages } = this.app;
    const { frame } = state;
    const sid = state.session.session_id;
    state.notes.applyFrameMasks({ frame, masks: [{ object_id: objectId, rle, score: null }] });
    state.notes.setPrompts(frame, objectId, { points: [], labels: [], box: null, mask: true });
    this.app.redraw();
    this.enqueue(async () => {
      const answer = await messages.withModel("Sending the mask",
        () => api.addMask(sid, { frame, object_id: objectId, mask: rle }));
      this.accept(sid, frame, objectId, answer, true);
    });
  }

  accept(sid, frame, objectId, answer, prompted) {
    const { state } = this.app;
    if (state.session?.session_id !== sid) return; // another session was opened meanwhile
    if (prompted) state.notes.prompted.add(objectId);
    state.notes.masksOn(frame).delete(objectId);
    state.notes.applyFrameMasks(answer);
    if (!answer.masks.some((m) => m.object_id === objectId) && !state.notes.hasPrompts(objectId)) {
      state.notes.prompted.delete(objectId); // the server drops an object left without prompts
    }
    if (frame === state.frame) this.app.redraw();
  }
}

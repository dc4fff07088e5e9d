// Tracking (propagation) of the prompted objects through the video: streams the server's events,
// drives the progress bar, and cancels on request.

import { api, readEventStream } from "./api.js";

const CANCEL_GRACE_MS = 4000; // after asking to cancel, drop the connection if the server has not ended

export class Tracker {
  /**
   * @param {{progress: HTMLProgressElement, label: HTMLElement}} view
   * @param {{frame: Function, finished: Function, status: Function}} handlers
   *   frame({frame, masks, done, total}); finished(kind, data) with kind end|cancelled|error;
   *   status(text) for "waiting for the model" lines.
   */
  constructor(view, handlers) {
    this.view = view;
    this.handlers = handlers;
    this.controller = null;
    this.sessionId = null;
  }

  get running() {
    return this.controller !== null;
  }

  /** Propagate from `startFrame` (null: the server's default, the first prompted frame). */
  async start(sessionId, direction, startFrame) {
    if (this.running) return;
    this.sessionId = sessionId;
    this.controller = new AbortController();
    let outcome = null;
    this.setProgress(0, 0, "Starting…");
    try {
      await readEventStream(api.propagateUrl(sessionId, direction, startFrame), (name, data) => {
        if (name === "queued") {
          this.setProgress(0, 0, `Waiting for the model (position ${data.position} in the queue)…`);
          this.handlers.status("Waiting for the model…");
        } else if (name === "start") {
          this.handlers.status("");
          this.setProgress(0, data.total, `Tracking 0 / ${data.total}`);
        } else if (name === "frame") {
          this.setProgress(data.done, data.total, `Tracking ${data.done} / ${data.total}`);
          this.handlers.frame(data);
        } else if (name === "end" || name === "cancelled" || name === "error") {
          outcome = { kind: name, data };
        }
      }, this.controller.signal);
      if (!outcome) {
        const detail = "The connection to the server ended before tracking finished.";
        outcome = { kind: "error", data: { detail } };
      }
    } catch (err) {
      outcome = err.name === "AbortError"
        ? { kind: "cancelled", data: {} }
        : { kind: "error", data: { detail: err.message } };
    } finally {
      clearTimeout(this.graceTimer);
      this.controller = null;
    }
    this.finish(outcome);
  }

  finish({ kind, data }) {
    const { progress } = this.view;
    if (kind === "end") {
      this.setProgress(1, 1, `Tracked ${data.done} frame${data.done === 1 ? "" : "s"}`);
    } else if (kind === "cancelled") {
      this.setProgress(Number(progress.value) || 0, Number(progress.max) || 1, "Tracking cancelled");
    } else {
      this.setProgress(0, 1, "Tracking failed");
    }
    this.handlers.finished(kind, data);
  }

  /** Ask the server to stop; drop the connection (which also stops it) if it does not end soon. */
  async cancel() {
    if (!this.running) return false;
    const controller = this.controller;
    this.view.label.textContent = "Cancelling…";
    this.graceTimer = setTimeout(() => controller.abort(), CANCEL_GRACE_MS);
    try {
      await api.cancel(this.sessionId);
    } catch {
      controller.abort();
    }
    return true;
  }

  setProgress(done, total, text) {
    const { progress, label } = this.view;
    if (total > 0) {
      progress.max = total;
      progress.value = done;
    } else {
      progress.removeAttribute("value"); // indeterminate while waiting
    }
    progress.dataset.done = String(done);
    progress.dataset.total = String(total);
    label.textContent = text;
  }
}

// Messages to the person: an error / notice banner, a status line, and the "waiting for the model"
// indicator shown while a model request takes a while.

import { api } from "./api.js";

const BUSY_CHECK_MS = 500; // ask the server whether the model is busy, this often, while waiting

export class Messages {
  /** @param {HTMLElement} banner  role=alert element  @param {HTMLElement} status  role=status element */
  constructor(banner, status) {
    this.banner = banner;
    this.bannerText = banner.querySelector(".message-text");
    this.status = status;
    this.pending = 0;
    banner.querySelector(".message-close").addEventListener("click", () => this.dismiss());
  }

  error(text) {
    this.show(text, "error");
  }

  notice(text) {
    this.show(text, "notice");
  }

  show(text, kind) {
    this.bannerText.textContent = text;
    this.banner.dataset.kind = kind;
    this.banner.hidden = false;
  }

  dismiss() {
    this.banner.hidden = true;
    this.bannerText.textContent = "";
  }

  setStatus(text) {
    this.status.textContent = text;
  }

  /**
   * Run a model request with a status line: `label` at first; "Waiting for the model…" while the server
   * reports the model busy with requests queued behind it. Errors are shown and re-thrown.
   */
  async withModel(label, work) {
    this.pending += 1;
    this.setStatus(`${label}…`);
    document.body.classList.add("working");
    const timer = setInterval(async () => {
      try {
        const info = await api.info();
        if (info.busy && info.queued > 0 && this.pending) {
          this.setStatus(`Waiting for the model — busy, ${info.queued} request(s) in the queue…`);
        }
      } catch {
        /* the request itself will report */
      }
    }, BUSY_CHECK_MS);
    try {
      const result = await work();
      this.setStatus("");
      return result;
    } catch (err) {
      this.setStatus("");
      if (err.name !== "AbortError") this.error(err.message);
      throw err;
    } finally {
      clearInterval(timer);
      this.pending -= 1;
      if (!this.pending) document.body.classList.remove("working");
    }
  }
}

// Transport and timeline of a video: play / pause, frame steps, a scrub slider, and a strip that
// marks the frames with masks (tracked) and the frames with prompts.

const MAX_STRIP_ROWS = 8; // objects beyond these are not drawn in the strip

export class Timeline {
  /**
   * @param {HTMLElement} root  element with #timeline-slider, #timeline-strip, #frame-label,
   *   #play-button, #prev-button, #next-button
   * @param {(idx: number) => Promise<void>} seek  shows a frame; resolves when it is drawn
   */
  constructor(root, seek) {
    this.root = root;
    this.seek = seek;
    this.slider = root.querySelector("#timeline-slider");
    this.strip = root.querySelector("#timeline-strip");
    this.label = root.querySelector("#frame-label");
    this.playButton = root.querySelector("#play-button");
    this.count = 1;
    this.fps = 24;
    this.current = 0;
    this.playing = false;
    this.playToken = 0;
    this.slider.addEventListener("input", () => this.seek(Number(this.slider.value)));
    this.playButton.addEventListener("click", () => this.toggle());
    root.querySelector("#prev-button").addEventListener("click", () => this.step(-1));
    root.querySelector("#next-button").addEventListener("click", () => this.step(1));
  }

  setVideo(count, fps) {
    this.stop();
    this.count = count;
    this.fps = fps > 0 && fps <= 120 ? fps : 24;
    this.slider.max = String(Math.max(0, count - 1));
    this.slider.value = "0";
    this.current = 0;
    this.updateLabel();
  }

  /** Reflect frame `idx` (already shown by the app) in the controls. */
  showing(idx) {
    this.current = idx;
    this.slider.value = String(idx);
    this.updateLabel();
  }

  updateLabel() {
    const seconds = this.current / this.fps;
    this.label.textContent = `Frame ${this.current + 1} / ${this.count} · ${seconds.toFixed(2)} s`;
  }

  step(delta) {
    this.stop();
    const idx = Math.max(0, Math.min(this.count - 1, this.current + delta));
    if (idx !== this.current) this.seek(idx);
  }

  toggle() {
    if (this.playing) this.stop();
    else this.play();
  }

  async play() {
    if (this.count <= 1) return;
    this.playing = true;
    this.playButton.setAttribute("aria-pressed", "true");
    this.playButton.setAttribute("aria-label", "Pause");
    this.playButton.textContent = "❚❚";
    const token = ++this.playToken;
    if (this.current >= this.count - 1) await this.seek(0);
    const period = 1000 / this.fps;
    while (this.playing && token === this.playToken && this.current < this.count - 1) {
      const started = performance.now();
      await this.seek(this.current + 1); // waits for the frame: playback never skips masks
      const wait = period - (performance.now() - started);
      if (wait > 0) await new Promise((r) => setTimeout(r, wait));
    }
    if (token === this.playToken) this.stop();
  }

  stop() {
    this.playing = false;
    this.playToken += 1;
    this.playButton.setAttribute("aria-pressed", "false");
    this.playButton.setAttribute("aria-label", "Play");
    this.playButton.textContent = "▶";
  }

  /**
   * Redraw the strip: one row per object (its colour on the frames where it has a mask) and a marker
   * above each frame with prompts.
   * @param {{color: string, has: (idx: number) => boolean}[]} rows
   * @param {Set<number>} promptFrames
   */
  drawStrip(rows, promptFrames) {
    const canvas = this.strip;
    const width = Math.max(1, Math.round(canvas.clientWidth * devicePixelRatio));
    const height = Math.max(1, Math.round(canvas.clientHeight * devicePixelRatio));
    if (canvas.width !== width) canvas.width = width;
    if (canvas.height !== height) canvas.height = height;
    const ctx = canvas.getContext("2d");
    ctx.clearRect(0, 0, width, height);
    const cell = width / this.count;
    const top = height * 0.4;
    const shown = rows.slice(0, MAX_STRIP_ROWS);
    const rowHeight = (height - top) / Math.max(1, shown.length);
    shown.forEach((row, r) => {
      ctx.fillStyle = row.color;
      for (let i = 0; i < this.count; i += 1) {
        if (!row.has(i)) continue;
        ctx.fillRect(Math.floor(i * cell), top + r * rowHeight, Math.ceil(cell), Math.ceil(rowHeight));
      }
    });
    ctx.fillStyle = "#f8fafc";
    for (const i of promptFrames) {
      const x = (i + 0.5) * cell;
      ctx.beginPath();
      ctx.moveTo(x - 4 * devicePixelRatio, 0);
      ctx.lineTo(x + 4 * devicePixelRatio, 0);
      ctx.lineTo(x, top * 0.9);
      ctx.fill();
    }
  }
}

// The frame viewer: three stacked canvases (frame, masks, prompts) at the frame's original size,
// scaled by CSS. With the prompt tool a click adds a point and a drag draws a box; with the brush or
// the eraser a drag paints. Coordinates are reported in original frame pixels.

import { previewStroke } from "./brush.js";
import { drawMasks, drawPrompts } from "./overlay.js";

const DRAG_THRESHOLD_PX = 6; // screen pixels before a press becomes a box drag

export class Viewer {
  /**
   * @param {HTMLElement} stage  element holding canvas#frame-canvas, #mask-canvas, #prompt-canvas
   * @param {{point: (x: number, y: number, keys: {shift: boolean, alt: boolean}) => void,
   *   box: (box: number[]) => void,
   *   stroke: (points: number[][], radius: number, erase: boolean) => void}} handlers
   */
  constructor(stage, handlers) {
    this.stage = stage;
    this.handlers = handlers;
    this.frameCanvas = stage.querySelector("#frame-canvas");
    this.maskCanvas = stage.querySelector("#mask-canvas");
    this.promptCanvas = stage.querySelector("#prompt-canvas");
    this.width = 0;
    this.height = 0;
    this.drag = null;
    this.lastPrompts = [];
    this.enabled = false;
    this.tool = "prompt"; // "prompt" | "brush" | "eraser"
    this.brushSize = 12; // radius in screen pixels
    this.strokeColor = [255, 255, 255];
    this.stroke = null;
    const target = this.promptCanvas;
    target.addEventListener("pointerdown", (e) => this.onDown(e));
    target.addEventListener("pointermove", (e) => this.onMove(e));
    target.addEventListener("pointerup", (e) => this.onUp(e));
    target.addEventListener("pointercancel", () => this.cancelDrag());
    target.addEventListener("contextmenu", (e) => e.preventDefault());
    new ResizeObserver(() => this.fit()).observe(stage.parentElement);
  }

  /** Scale the stage to the largest size with the frame's aspect that fits its container. */
  fit() {
    const wrap = this.stage.parentElement;
    if (!this.width || !this.height) return;
    const style = getComputedStyle(wrap);
    const availW = wrap.clientWidth - parseFloat(style.paddingLeft) - parseFloat(style.paddingRight);
    const availH = wrap.clientHeight - parseFloat(style.paddingTop) - parseFloat(style.paddingBottom);
    const scale = Math.min(availW / this.width, availH / this.height);
    if (!(scale > 0)) return;
    this.stage.style.width = `${Math.floor(this.width * scale)}px`;
    this.stage.style.height = `${Math.floor(this.height * scale)}px`;
    if (this.lastPrompts.length) this.showPrompts(this.lastPrompts);
  }

  /** Size every canvas to a frame of `width` x `height` pixels. */
  resize(width, height) {
    this.width = width;
    this.height = height;
    for (const canvas of [this.frameCanvas, this.maskCanvas, this.promptCanvas]) {
      canvas.width = width;
      canvas.height = height;
    }
    this.fit();
  }

  showImage(image) {
    const ctx = this.frameCanvas.getContext("2d");
    ctx.drawImage(image, 0, 0, this.width, this.height);
  }

  showMasks(layers, opacity) {
    drawMasks(this.maskCanvas, layers, opacity);
  }

  showPrompts(sets) {
    this.lastPrompts = sets;
    drawPrompts(this.promptCanvas, sets, this.drag && this.drag.box, this.scale());
    if (this.stroke) {
      const { points, radius, erase } = this.stroke;
      previewStroke(this.promptCanvas.getContext("2d"), points, radius, this.strokeColor, erase);
    }
  }

  /** Frame pixels per CSS pixel of the shown canvas. */
  scale() {
    const shown = this.promptCanvas.getBoundingClientRect().width;
    return shown > 0 ? this.width / shown : 1;
  }

  /** Pointer event -> [x, y] in frame pixels, clamped to the frame. */
  toFrame(event) {
    const rect = this.promptCanvas.getBoundingClientRect();
    const x = ((event.clientX - rect.left) / rect.width) * this.width;
    const y = ((event.clientY - rect.top) / rect.height) * this.height;
    return [clamp(x, 0, this.width - 1), clamp(y, 0, this.height - 1)];
  }

  onDown(event) {
    if (!this.enabled || event.button !== 0) return;
    this.promptCanvas.setPointerCapture(event.pointerId);
    if (this.tool !== "prompt") {
      this.stroke = { points: [this.toFrame(event)], radius: Math.max(1, this.brushSize * this.scale()),
        erase: this.tool === "eraser" || event.shiftKey };
      this.showPrompts(this.lastPrompts);
      return;
    }
    this.drag = { startScreen: [event.clientX, event.clientY], start: this.toFrame(event), box: null,
      shift: event.shiftKey, alt: event.altKey };
  }

  onMove(event) {
    if (this.stroke) {
      this.stroke.points.push(this.toFrame(event));
      this.showPrompts(this.lastPrompts);
      return;
    }
    if (!this.drag) return;
    const [sx, sy] = this.drag.startScreen;
    if (!this.drag.box && Math.hypot(event.clientX - sx, event.clientY - sy) < DRAG_THRESHOLD_PX) return;
    const [x0, y0] = this.drag.start;
    const [x1, y1] = this.toFrame(event);
    this.drag.box = [Math.min(x0, x1), Math.min(y0, y1), Math.max(x0, x1), Math.max(y0, y1)];
    this.showPrompts(this.lastPrompts);
  }

  onUp(event) {
    const stroke = this.stroke;
    if (stroke) {
      this.stroke = null;
      this.showPrompts(this.lastPrompts);
      this.handlers.stroke(stroke.points, stroke.radius, stroke.erase);
      return;
    }
    const drag = this.drag;
    if (!drag) return;
    this.drag = null;
    this.showPrompts(this.lastPrompts);
    if (drag.box) {
      const [x0, y0, x1, y1] = drag.box.map((v) => Math.round(v));
      if (x1 - x0 >= 2 && y1 - y0 >= 2) this.handlers.box([x0, y0, x1, y1]);
    } else {
      const [x, y] = drag.start;
      this.handlers.point(Math.round(x), Math.round(y),
        { shift: drag.shift || event.shiftKey, alt: drag.alt || event.altKey });
    }
  }

  /** Abandon a box being drawn (Esc). Returns whether there was one. */
  cancelDrag() {
    const had = Boolean(this.drag || this.stroke);
    this.drag = null;
    this.stroke = null;
    this.showPrompts(this.lastPrompts);
    return had;
  }
}

function clamp(v, lo, hi) {
  return Math.max(lo, Math.min(hi, v));
}

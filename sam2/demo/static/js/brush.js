// Painting a mask: a brush (or eraser) stroke applied on top of an object's current mask.

/**
 * The mask after a stroke, row-major, 0/1.
 * @param {Uint8Array|null} base  current mask (height * width) or null for an empty one
 * @param {number[][]} points  the stroke's path [[x, y], ...] in frame pixels
 * @param {number} radius  brush radius in frame pixels
 * @param {boolean} erase  remove instead of add
 * @returns {Uint8Array}
 */
export function applyStroke(base, width, height, points, radius, erase) {
  const canvas = new OffscreenCanvas(width, height);
  const ctx = canvas.getContext("2d", { willReadFrequently: true });
  if (base) {
    const image = ctx.createImageData(width, height);
    for (let i = 0; i < base.length; i += 1) if (base[i]) image.data[i * 4 + 3] = 255;
    ctx.putImageData(image, 0, 0);
  }
  ctx.globalCompositeOperation = erase ? "destination-out" : "source-over";
  ctx.fillStyle = ctx.strokeStyle = "#000";
  ctx.lineWidth = 2 * radius;
  ctx.lineCap = ctx.lineJoin = "round";
  ctx.beginPath();
  ctx.moveTo(points[0][0], points[0][1]);
  for (const [x, y] of points.slice(1)) ctx.lineTo(x, y);
  if (points.length === 1) ctx.arc(points[0][0], points[0][1], radius, 0, 2 * Math.PI);
  if (points.length === 1) ctx.fill();
  else ctx.stroke();
  const alpha = ctx.getImageData(0, 0, width, height).data;
  const mask = new Uint8Array(width * height);
  for (let i = 0; i < mask.length; i += 1) mask[i] = alpha[i * 4 + 3] >= 128 ? 1 : 0;
  return mask;
}

/** Draw a stroke being painted (a preview) on a 2D context. */
export function previewStroke(ctx, points, radius, color, erase) {
  if (!points.length) return;
  ctx.save();
  ctx.globalAlpha = 0.6;
  ctx.strokeStyle = ctx.fillStyle = erase ? "#ffffff" : `rgb(${color.join(",")})`;
  ctx.lineWidth = 2 * radius;
  ctx.lineCap = ctx.lineJoin = "round";
  ctx.beginPath();
  ctx.moveTo(points[0][0], points[0][1]);
  for (const [x, y] of points.slice(1)) ctx.lineTo(x, y);
  if (points.length === 1) {
    ctx.arc(points[0][0], points[0][1], radius, 0, 2 * Math.PI);
    ctx.fill();
  } else {
    ctx.stroke();
  }
  ctx.restore();
}

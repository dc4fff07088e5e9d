// What the person has annotated in the open session, as the page knows it: the prompts per
// (frame, object), the masks per frame (from clicks and from tracking) and "segment everything"
// results. Pure data, no drawing.

export class Annotations {
  constructor() {
    // "frame:object" -> {points: [[x, y]], labels: [0|1], box: [x0,y0,x1,y1]|null, mask: bool (painted)}
    this.prompts = new Map();
    this.masks = new Map(); // frame -> Map(objectId -> {rle, score})
    this.everything = new Map(); // frame -> [{rle, area, score, bbox}]
    this.prompted = new Set(); // object ids the server knows (have had prompts)
  }

  promptsOf(frame, objectId) {
    return this.prompts.get(`${frame}:${objectId}`) || { points: [], labels: [], box: null, mask: false };
  }

  setPrompts(frame, objectId, prompts) {
    const key = `${frame}:${objectId}`;
    if (!prompts.points.length && !prompts.box && !prompts.mask) this.prompts.delete(key);
    else this.prompts.set(key, prompts);
  }

  /** Prompt sets of one frame: [{objectId, points, labels, box}]. */
  promptsOnFrame(frame) {
    const out = [];
    for (const [key, value] of this.prompts) {
      const [f, o] = key.split(":").map(Number);
      if (f === frame) out.push({ objectId: o, ...value });
    }
    return out;
  }

  /** Whether an object has prompts on any frame. */
  hasPrompts(objectId) {
    return [...this.prompts.keys()].some((k) => Number(k.split(":")[1]) === objectId);
  }

  framesWithPrompts() {
    return new Set([...this.prompts.keys()].map((k) => Number(k.split(":")[0])));
  }

  /** Store a `FrameMasks` answer: its masks replace those of the same objects on that frame. */
  applyFrameMasks(frameMasks) {
    let frame = this.masks.get(frameMasks.frame);
    if (!frame) {
      frame = new Map();
      this.masks.set(frameMasks.frame, frame);
    }
    for (const m of frameMasks.masks) frame.set(m.object_id, { rle: m.rle, score: m.score });
  }

  /** Replace all masks of a frame (an authoritative answer such as GET .../masks). */
  replaceFrameMasks(frameMasks) {
    this.masks.delete(frameMasks.frame);
    this.applyFrameMasks(frameMasks);
  }

  masksOn(frame) {
    return this.masks.get(frame) || new Map();
  }

  removeObject(objectId) {
    for (const key of [...this.prompts.keys()]) {
      if (Number(key.split(":")[1]) === objectId) this.prompts.delete(key);
    }
    for (const masks of this.masks.values()) masks.delete(objectId);
    this.prompted.delete(objectId);
  }

  /** Frames that have at least one mask. */
  framesWithMasks() {
    return [...this.masks.entries()].filter(([, m]) => m.size > 0).map(([f]) => f);
  }
}

// Video frames as decoded images, fetched from the server on demand, cached, and prefetched around
// the frame being shown so that playing and scrubbing stay smooth.

const PREFETCH_AHEAD = 12;
const PREFETCH_BEHIND = 3;
const MAX_CACHED = 160;
const MAX_PARALLEL = 4;

export class FrameStore {
  /** @param {(idx: number) => string} urlOf  @param {number} count */
  constructor(urlOf, count) {
    this.urlOf = urlOf;
    this.count = count;
    this.cache = new Map(); // idx -> Promise<HTMLImageElement>
    this.queue = [];
    this.active = 0;
  }

  /** The decoded frame `idx` (fetched now if needed, ahead of any prefetch). */
  get(idx) {
    let entry = this.cache.get(idx);
    if (!entry) {
      entry = this.load(idx);
      this.cache.set(idx, entry);
    }
    return entry;
  }

  load(idx) {
    return new Promise((resolve, reject) => {
      const image = new Image();
      image.decoding = "async";
      image.onload = () => resolve(image);
      image.onerror = () => {
        this.cache.delete(idx);
        reject(new Error(`Frame ${idx} could not be loaded from the server.`));
      };
      image.src = this.urlOf(idx);
    });
  }

  /** Queue the frames around `center` (mostly ahead: playback goes forward) and drop far ones. */
  prefetch(center) {
    const wanted = [];
    for (let d = 1; d <= PREFETCH_AHEAD; d += 1) wanted.push(center + d);
    for (let d = 1; d <= PREFETCH_BEHIND; d += 1) wanted.push(center - d);
    this.queue = wanted.filter((i) => i >= 0 && i < this.count && !this.cache.has(i));
    this.pump();
    this.evict(center);
  }

  pump() {
    while (this.active < MAX_PARALLEL && this.queue.length) {
      const idx = this.queue.shift();
      if (this.cache.has(idx)) continue;
      this.active += 1;
      const entry = this.load(idx);
      this.cache.set(idx, entry);
      entry.catch(() => {}).finally(() => {
        this.active -= 1;
        this.pump();
      });
    }
  }

  evict(center) {
    if (this.cache.size <= MAX_CACHED) return;
    const far = [...this.cache.keys()].sort((a, b) => Math.abs(b - center) - Math.abs(a - center));
    for (const idx of far.slice(0, this.cache.size - MAX_CACHED)) this.cache.delete(idx);
  }
}

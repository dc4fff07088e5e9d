// The objects of a session: id, name, colour, visibility, and the list in the side panel where they
// are selected, renamed, hidden and removed.

const PALETTE = [
  [255, 99, 71], [30, 144, 255], [50, 205, 50], [255, 191, 0], [186, 85, 211],
  [0, 206, 209], [255, 105, 180], [154, 205, 50], [255, 140, 0], [123, 104, 238],
  [64, 224, 208], [220, 20, 60],
];

/** A distinct colour for the n-th object (0-based): a fixed palette, then golden-angle hues. */
export function colorFor(n) {
  if (n < PALETTE.length) return PALETTE[n];
  return hsl((n * 137.508) % 360, 0.72, 0.58);
}

/** RGB (0..255) of a colour given as hue in degrees, saturation and lightness in 0..1. */
export function hsl(h, s, l) {
  const k = (n) => (n + h / 30) % 12;
  const a = s * Math.min(l, 1 - l);
  const f = (n) => l - a * Math.max(-1, Math.min(k(n) - 3, Math.min(9 - k(n), 1)));
  return [f(0), f(8), f(4)].map((v) => Math.round(v * 255));
}

export class ObjectList {
  /**
   * @param {HTMLElement} container  the <ul> to render into
   * @param {{select: Function, rename: Function, toggle: Function, remove: Function}} handlers
   */
  constructor(container, handlers) {
    this.container = container;
    this.handlers = handlers;
    this.reset();
  }

  reset() {
    this.objects = [];
    this.selectedId = null;
    this.nextId = 1;
    this.render();
  }

  /** Add an object with the next free id; returns it. */
  add() {
    const id = this.nextId;
    this.nextId += 1;
    const object = { id, name: `Object ${id}`, color: colorFor(id - 1), hidden: false };
    this.objects.push(object);
    this.selectedId = id;
    this.render();
    return object;
  }

  get(id) {
    return this.objects.find((o) => o.id === id) || null;
  }

  get selected() {
    return this.get(this.selectedId);
  }

  /** Select an object; updates the list in place (an object's name field may be in use). */
  select(id) {
    if (!this.get(id)) return;
    this.selectedId = id;
    for (const li of this.container.children) {
      const selected = Number(li.dataset.objectId) === id;
      li.classList.toggle("selected", selected);
      li.querySelector(".object-select")?.setAttribute("aria-pressed", String(selected));
    }
  }

  remove(id) {
    const index = this.objects.findIndex((o) => o.id === id);
    if (index < 0) return;
    this.objects.splice(index, 1);
    if (this.selectedId === id) {
      const next = this.objects[Math.min(index, this.objects.length - 1)];
      this.selectedId = next ? next.id : null;
    }
    this.render();
  }

  render() {
    const ul = this.container;
    ul.replaceChildren();
    for (const object of this.objects) ul.append(this.item(object));
  }

  item(object) {
    const li = document.createElement("li");
    li.className = "object-item";
    li.dataset.objectId = String(object.id);
    li.classList.toggle("selected", object.id === this.selectedId);
    li.classList.toggle("hidden-object", object.hidden);
    li.style.setProperty("--obj-color", `rgb(${object.color.join(",")})`);

    const pick = button("object-select", `Select ${object.name}`, "");
    pick.setAttribute("aria-pressed", String(object.id === this.selectedId));
    pick.append(swatch(object.color));
    pick.addEventListener("click", () => this.handlers.select(object.id));

    const name = document.createElement("input");
    name.className = "object-name";
    name.value = object.name;
    name.setAttribute("aria-label", `Name of object ${object.id}`);
    name.addEventListener("focus", () => this.handlers.select(object.id, { keepFocus: true }));
    name.addEventListener("change", () => {
      object.name = name.value.trim() || `Object ${object.id}`;
      this.handlers.rename(object.id, object.name);
    });
    name.addEventListener("keydown", (e) => {
      if (e.key === "Enter" || e.key === "Escape") name.blur();
    });

    const eyeLabel = `${object.hidden ? "Show" : "Hide"} ${object.name}`;
    const eye = button("icon-button object-visibility", eyeLabel, object.hidden ? "◌" : "◉");
    eye.setAttribute("aria-pressed", String(object.hidden));
    eye.addEventListener("click", () => this.handlers.toggle(object.id));

    const remove = button("icon-button object-remove", `Remove ${object.name}`, "✕");
    remove.addEventListener("click", () => this.handlers.remove(object.id));

    li.append(pick, name, eye, remove);
    return li;
  }
}

function button(className, label, text) {
  const b = document.createElement("button");
  b.type = "button";
  b.className = className;
  b.title = label;
  b.setAttribute("aria-label", label);
  b.textContent = text;
  return b;
}

function swatch(color) {
  const s = document.createElement("span");
  s.className = "swatch";
  s.style.background = `rgb(${color.join(",")})`;
  return s;
}

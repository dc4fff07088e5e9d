// Keyboard shortcuts: one table drives both the key handling and the help overlay.

/** [keys shown in the help, description, matcher, action name] */
export const SHORTCUTS = [
  ["Space", "Play / pause", (e) => e.key === " ", "togglePlay"],
  ["← / →", "Previous / next frame (Shift: 10 frames)",
    (e) => e.key === "ArrowLeft" || e.key === "ArrowRight", "step"],
  ["Home / End", "First / last frame", (e) => e.key === "Home" || e.key === "End", "jump"],
  ["N", "New object", (e) => lower(e) === "n", "addObject"],
  ["Delete", "Remove the selected object", (e) => e.key === "Delete", "removeObject"],
  ["1 … 9", "Select object 1 … 9", (e) => /^[1-9]$/.test(e.key), "selectIndex"],
  ["H", "Hide / show the selected object", (e) => lower(e) === "h", "toggleHidden"],
  ["X", "Switch clicks between positive and negative", (e) => lower(e) === "x", "toggleNegative"],
  ["B", "Switch between clicks and the brush", (e) => lower(e) === "b", "toggleBrush"],
  ["Z", "Undo the last point or box", (e) => lower(e) === "z", "undo"],
  ["C", "Clear the selected object's prompts on this frame", (e) => lower(e) === "c", "clearFrame"],
  ["T", "Track the objects", (e) => lower(e) === "t", "track"],
  ["E", "Segment everything on this frame", (e) => lower(e) === "e", "everything"],
  ["[ / ]", "Mask opacity down / up", (e) => e.key === "[" || e.key === "]", "opacity"],
  ["Esc", "Cancel tracking, a box being drawn, or close this help", (e) => e.key === "Escape", "escape"],
  ["?", "Show this help", (e) => e.key === "?", "help"],
];

function lower(event) {
  return event.key.length === 1 ? event.key.toLowerCase() : "";
}

/** Whether the focused element uses keys itself (text and number fields, checkboxes, selects). */
function handlesOwnKeys(target) {
  if (!(target instanceof HTMLElement)) return false;
  if (target.isContentEditable || target.tagName === "TEXTAREA" || target.tagName === "SELECT") return true;
  if (target.tagName === "SUMMARY") return true;
  if (target.tagName !== "INPUT") return false;
  return !["range", "button", "file"].includes(target.type); // checkboxes keep their own Space
}

/**
 * Listen for the shortcuts on `document`; `actions[name](event)` runs the action.
 * Keys for a focused field (an object's name, a setting, a checkbox) are left alone, except Esc;
 * an open dialog only listens for Esc and ? (which close it).
 */
export function installShortcuts(actions) {
  document.addEventListener("keydown", (event) => {
    if (event.ctrlKey || event.metaKey || event.altKey) return;
    const modal = document.querySelector("dialog[open]");
    if (modal) { // only closing it while a dialog is open
      if (event.key === "Escape" || event.key === "?") {
        event.preventDefault();
        modal.close();
      }
      return;
    }
    if (handlesOwnKeys(event.target) && event.key !== "Escape") return;
    if (event.target instanceof HTMLInputElement && event.target.type === "range" &&
        event.key.startsWith("Arrow")) return; // a focused slider handles its own arrows
    for (const [, , matches, name] of SHORTCUTS) {
      if (!matches(event)) continue;
      event.preventDefault();
      actions[name](event);
      return;
    }
  });
}

/** Fill the help overlay's table body. */
export function renderHelp(tbody) {
  tbody.replaceChildren();
  for (const [keys, description] of SHORTCUTS) {
    const row = document.createElement("tr");
    const keyCell = document.createElement("td");
    for (const part of keys.split(" ")) {
      if (["/", "…"].includes(part)) {
        keyCell.append(` ${part} `);
      } else {
        const kbd = document.createElement("kbd");
        kbd.textContent = part;
        keyCell.append(kbd);
      }
    }
    const text = document.createElement("td");
    text.textContent = description;
    row.append(keyCell, text);
    tbody.append(row);
  }
}

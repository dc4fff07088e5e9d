// Opening media: the gallery of bundled samples, the file button, and drag & drop anywhere on the page.

/**
 * @param {{gallery: HTMLElement, fileInput: HTMLInputElement, dropOverlay: HTMLElement}} view
 * @param {{sample: (id: string) => void, file: (file: File) => void}} handlers
 */
export function installOpening(view, handlers) {
  view.fileInput.addEventListener("change", () => {
    const file = view.fileInput.files[0];
    view.fileInput.value = ""; // choosing the same file again still fires
    if (file) handlers.file(file);
  });
  let depth = 0;
  const hasFiles = (e) => [...(e.dataTransfer?.types || [])].includes("Files");
  document.addEventListener("dragenter", (e) => {
    if (!hasFiles(e)) return;
    depth += 1;
    view.dropOverlay.hidden = false;
  });
  document.addEventListener("dragleave", () => {
    depth = Math.max(0, depth - 1);
    if (!depth) view.dropOverlay.hidden = true;
  });
  document.addEventListener("dragover", (e) => {
    if (hasFiles(e)) e.preventDefault();
  });
  document.addEventListener("drop", (e) => {
    if (!hasFiles(e)) return;
    e.preventDefault();
    depth = 0;
    view.dropOverlay.hidden = true;
    const file = e.dataTransfer.files[0];
    if (file) handlers.file(file);
  });
}

/** Show the samples of /api/info (or say that there are none). */
export function renderGallery(gallery, samples, open) {
  gallery.replaceChildren();
  if (!samples.length) {
    const li = document.createElement("li");
    li.className = "muted small";
    li.textContent = "No samples are bundled with this server — upload your own image or video.";
    gallery.append(li);
    return;
  }
  for (const sample of samples) {
    const li = document.createElement("li");
    const b = document.createElement("button");
    b.type = "button";
    b.className = "sample";
    b.dataset.sampleId = sample.id;
    b.setAttribute("aria-label", `Open sample ${sample.name} (${sample.kind})`);
    const icon = document.createElement("span");
    icon.className = "sample-kind";
    icon.textContent = sample.kind === "video" ? "▶" : "▣";
    icon.setAttribute("aria-hidden", "true");
    const name = document.createElement("span");
    name.textContent = sample.name;
    b.append(icon, name);
    b.addEventListener("click", () => open(sample.id));
    li.append(b);
    gallery.append(li);
  }
}

/** Save the body of an export response under the name the server gives (Content-Disposition). */
export async function download(response, fallbackName) {
  const disposition = response.headers.get("Content-Disposition") || "";
  const match = /filename\*?=(?:UTF-8'')?"?([^";]+)"?/i.exec(disposition);
  const name = match ? decodeURIComponent(match[1]) : fallbackName;
  const blob = await response.blob();
  const href = URL.createObjectURL(blob);
  const a = document.createElement("a");
  a.href = href;
  a.download = name;
  document.body.append(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(href), 60000);
  return name;
}

// A drop zone: highlights while something is dragged over it and hands the drop's
// DataTransfer to `onDrop`. Shared by the contribute page (files, folders) and the join
// page (a key file).

export function dropZone(el, onDrop) {
  el.addEventListener("dragover", (e) => {
    e.preventDefault();
    el.classList.add("over");
  });
  el.addEventListener("dragleave", () => el.classList.remove("over"));
  el.addEventListener("drop", (e) => {
    e.preventDefault();
    el.classList.remove("over");
    onDrop(e.dataTransfer);
  });
}

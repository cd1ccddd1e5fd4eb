// One image, read only: its latest mask (solid class colours) and the latest suggestion (hatched, as the
// labeling page shows it) drawn over the photo, each on its own canvas with a checkbox and a shared opacity.
import { getBytes } from "./api.js";
import { decodePng } from "../label/png.js";
import { OverlayRenderer } from "../label/render.js";

const UNLABELED = 255;
const data = JSON.parse(document.getElementById("viewer-data").textContent);
const colors = data.classes.map((c) => c.color);

async function draw(url, canvas, asSuggestion) {
  const png = await decodePng(await getBytes(url));
  if (png.width !== data.width || png.height !== data.height) {
    throw new Error(`${url} is ${png.width}×${png.height}, the image ${data.width}×${data.height}`);
  }
  const none = new Uint8Array(png.data.length).fill(UNLABELED);
  const doc = { width: png.width, height: png.height, labels: asSuggestion ? none : png.data, pending: asSuggestion ? png.data : none };
  new OverlayRenderer(canvas, doc, colors).renderAll();
}

function toggle(checkbox, canvas) {
  const apply = () => { canvas.hidden = !checkbox.checked; };
  checkbox.addEventListener("change", apply);
  apply();
}

const mask = document.getElementById("viewer-mask");
const suggestion = document.getElementById("viewer-suggestion");
const opacity = document.getElementById("viewer-opacity");
const setOpacity = () => { for (const canvas of [mask, suggestion]) canvas.style.opacity = opacity.value / 100; };
opacity.addEventListener("input", setOpacity);
setOpacity();
toggle(document.getElementById("show-mask"), mask);
toggle(document.getElementById("show-suggestion"), suggestion);
const jobs = [];
if (data.mask_url) jobs.push(draw(data.mask_url, mask, false));
if (data.suggestion_url) jobs.push(draw(data.suggestion_url, suggestion, true));
Promise.all(jobs).then(() => { document.body.dataset.ready = "1"; }, (error) => {
  console.error(error);
  document.getElementById("viewer").dataset.error = error.message;
});

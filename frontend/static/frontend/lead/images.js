// Images page: one checkbox selects every image on the page.
const all = document.querySelector("[data-check-all]");
if (all) {
  all.addEventListener("change", () => {
    document.querySelectorAll('#split-form input[name="image"]').forEach((box) => { box.checked = all.checked; });
  });
}

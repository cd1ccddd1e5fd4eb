// The queue page, keyboard-first: Enter anywhere starts (or resumes) labeling; while
// nothing is open to label, the page reloads itself every few seconds to notice a new round.
const start = document.getElementById("start-form");
document.addEventListener("keydown", (event) => {
  if (event.key === "Enter" && start && !event.repeat && !["INPUT", "TEXTAREA", "BUTTON", "A"].includes(event.target.tagName)) {
    event.preventDefault();
    start.requestSubmit();
  }
});

const reload = document.querySelector("[data-reload-after]");
if (reload) setTimeout(() => window.location.reload(), Number(reload.dataset.reloadAfter) * 1000);

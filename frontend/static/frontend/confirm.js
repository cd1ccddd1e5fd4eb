// <form data-confirm="Question?">: ask before submitting (the Content-Security-Policy allows no inline onsubmit).
document.addEventListener("submit", (event) => {
  const question = event.target.dataset?.confirm;
  if (question && !window.confirm(question)) event.preventDefault();
});

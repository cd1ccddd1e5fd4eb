// Settings page: say what the budget means in pixels and images, and keep impossible combinations unselectable.
const form = document.querySelector("form.settings");
const preview = document.getElementById("budget-preview");

function field(name) {
  return form.querySelector(`[name="${name}"]`);
}

function describeBudget() {
  const images = Number(preview.dataset.poolImages);
  const pixels = Number(preview.dataset.poolPixels);
  const unit = field("budget_unit").value;
  const amount = Number(field("budget_per_round").value);
  const rounds = Number(field("rounds_total").value);
  const base = `Target pool: ${images} image${images === 1 ? "" : "s"}, ${pixels.toLocaleString()} pixels.`;
  if (!Number.isFinite(amount) || amount <= 0) {
    preview.textContent = base;
    return;
  }
  let perRound = "";
  if (unit === "pixel_percent") {
    perRound = ` ${amount} % of target pixels per round`;
    if (pixels) {
      const px = Math.round((pixels * amount) / 100);
      perRound += ` ≈ ${px.toLocaleString()} pixels (≈ ${(px / (pixels / images)).toFixed(1)} images' worth)`;
    }
    perRound += `; ${Math.min(100, amount * rounds).toFixed(1)} % after ${rounds} rounds.`;
  } else if (unit === "images") {
    perRound = ` ${amount} images per round`;
    if (images) perRound += ` = ${((100 * amount) / images).toFixed(1)} % of the pool`;
    perRound += `; ${images ? Math.min(images, amount * rounds) : amount * rounds} images after ${rounds} rounds.`;
  } else if (unit === "regions") {
    perRound = ` ${amount} superpixel regions per round, spread over the most useful images.`;
  }
  preview.textContent = base + perRound;
}

function constrain() {
  const regionQueries = field("query_unit").value === "region";
  const budgetUnit = field("budget_unit");
  const regions = budgetUnit.querySelector('option[value="regions"]');
  regions.disabled = !regionQueries;
  if (!regionQueries && budgetUnit.value === "regions") budgetUnit.value = "pixel_percent";
  const ripu = field("strategy").querySelector('option[value="region"]');
  ripu.disabled = !regionQueries;
  if (!regionQueries && field("strategy").value === "region") field("strategy").value = "entropy_diversity";
}

if (form && preview) {
  form.addEventListener("input", () => { constrain(); describeBudget(); });
  constrain();
  describeBudget();
}

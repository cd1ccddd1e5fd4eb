// Which saved version the labels stand on, and every sentence the page says about it.
//
// The Saver holds the one version record; the header line, the save status in
// the footer, the merge notice and the conflict question are all written from
// it by these pure functions, so they can never disagree.

/** ``{number, author, mine, submitted}``; number 0 = nothing saved yet. */
export const NO_VERSION = Object.freeze({ number: 0, author: null, mine: false, submitted: false });

/** The record of a version as the API describes it (AnnotationVersionSerializer); ``mine``: saved by this user. */
export function versionOf(annotation, { mine = false } = {}) {
  if (!annotation) return NO_VERSION;
  return { number: annotation.version, author: annotation.author || null, mine: Boolean(mine), submitted: Boolean(annotation.is_submitted) };
}

function author(version) {
  return version.mine ? "you" : version.author || "someone else";
}

/** The panel's header line. */
export function describeVersion(version) {
  if (!version.number) return "No saved version yet.";
  return `Version ${version.number} by ${author(version)} (${version.submitted ? "submitted" : "draft"}).`;
}

/**
 * The footer's save status. ``status``: {kind: saved | dirty | saving | merged | error | blocked,
 * submit?, how?, conflicts?, message?}; ``version`` the current record.
 */
export function describeSave(status, version) {
  switch (status.kind) {
    case "saved": return version.number ? `Saved as version ${version.number}` : "Nothing saved yet";
    case "dirty": return "Unsaved changes";
    case "saving": return status.submit ? "Submitting…" : "Saving…";
    case "merged": return describeMerge(status, version);
    case "error": return status.message || "Saving failed.";
    case "blocked": return "Not saved";
    default: return "";
  }
}

/** After a 409: what happened to the labels (``status.how``: merged | mine | theirs | reload). */
export function describeMerge({ how, conflicts = 0 }, version) {
  const other = version.mine ? `version ${version.number} from your other tab` : `version ${version.number} by ${author(version)}`;
  if (how === "reload") return `Reloaded ${other}.`;
  const mine = version.mine ? "this tab's" : "yours";
  const theirs = version.mine ? "the other tab's" : "theirs";
  return `Merged with ${other}` + (conflicts
    ? ` (${conflicts.toLocaleString()} overlapping pixels: kept ${how === "theirs" ? theirs : mine}).`
    : " (no overlapping edits).");
}

/**
 * The question when both sides changed the same pixels: {title, message, buttons}. ``latest`` is the
 * version record of the newer save (``mine`` when this user saved it, from another tab or window).
 */
export function conflictQuestion({ latest, conflicts, mineChanged }) {
  const overlap = `${conflicts.toLocaleString()} of the ${mineChanged.toLocaleString()} pixels you changed here`;
  if (latest.mine) {
    return {
      title: "You saved this image in another tab",
      message: `You saved version ${latest.number} in another tab or window while you worked here. ${overlap} were changed there too. Merge keeps every other change of both; choose which tab's pixels win where they overlap, or reload the other tab's version and drop the changes made here.`,
      buttons: [
        { value: "mine", label: "Merge, keep this tab's", primary: true },
        { value: "theirs", label: "Merge, keep the other tab's" },
        { value: "reload", label: "Reload the other tab's version" },
      ],
    };
  }
  const who = latest.author || "Someone else";
  return {
    title: `${who} saved this image`,
    message: `${who} saved version ${latest.number} while you worked. ${overlap} were changed by both of you. Merge keeps everybody's other changes; choose whose pixels win where you overlap, or reload their version and drop your changes.`,
    buttons: [
      { value: "mine", label: "Merge, keep mine", primary: true },
      { value: "theirs", label: "Merge, keep theirs" },
      { value: "reload", label: "Reload theirs" },
    ],
  };
}

// The polygon tool's preview, drawn in screen pixels.
//
// The layers under it are image-sized canvases scaled by one CSS transform; a
// line drawn in image coordinates in that stack is rasterised at image
// resolution and then magnified, so at 32× zoom a 2 px dashed stroke became
// 64 px wide, broken bars. Here the vertices are mapped to the viewport's
// pixels first (a pure function), and the SVG over the viewport is never scaled.

/** Image points ``[{x, y}]`` → screen points ``[[sx, sy]]`` relative to the viewport, for ``view = {scale, tx, ty}``. */
export function toScreen(points, { scale, tx, ty }) {
  return points.map((p) => [tx + p.x * scale, ty + p.y * scale]);
}

/**
 * What the preview shows, in screen pixels: ``edges`` the placed vertices in order, ``rubber`` the
 * segment from the last vertex to the pointer (while clicking vertices, not while dragging a lasso),
 * ``start`` the first vertex (a click near it closes the polygon) or null.
 */
export function sketchGeometry(points, hover, view, { dragging = false } = {}) {
  const edges = toScreen(points, view);
  const rubber = points.length && hover && !dragging ? toScreen([points[points.length - 1], hover, points[0]], view) : [];
  return { edges, rubber, start: edges.length ? edges[0] : null };
}

const asAttribute = (points) => points.map(([x, y]) => `${x.toFixed(2)},${y.toFixed(2)}`).join(" ");

/** Draw ``sketchGeometry``'s result into the viewport's <svg id="sketch">. */
export function drawSketch(svg, { edges, rubber, start }) {
  svg.querySelector(".area").setAttribute("points", asAttribute(edges.length >= 3 || rubber.length ? [...edges, ...rubber.slice(1, 2)] : []));
  svg.querySelector(".halo").setAttribute("points", asAttribute(edges));
  svg.querySelector(".edge").setAttribute("points", asAttribute(edges));
  svg.querySelector(".rubber").setAttribute("points", asAttribute(rubber));
  const circle = svg.querySelector(".start");
  circle.setAttribute("cx", start ? start[0] : -100);
  circle.setAttribute("cy", start ? start[1] : -100);
  circle.setAttribute("r", start ? 5 : 0);
}

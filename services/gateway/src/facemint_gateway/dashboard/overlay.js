// Draws a result frame's faces (boxes, labels, landmarks) on a transparent canvas laid over the media.

export const BOX_COLOUR = "#00e676";
export const LANDMARK_COLOUR = "#ff4081";

/** A face's landmarks: the spec puts them under attributes.landmarks; accept face.landmarks too. */
function landmarksOf(face) {
  const points = (face.attributes && face.attributes.landmarks) || face.landmarks || [];
  return points.filter((p) => Array.isArray(p) && p.length >= 2 && Number.isFinite(p[0]) && Number.isFinite(p[1]));
}

function labelOf(face) {
  const parts = [];
  if (typeof face.confidence === "number") parts.push(face.confidence.toFixed(2));
  const a = face.attributes || {};
  if (a.age !== undefined) parts.push(`age ${a.age}`);
  if (a.gender) parts.push(a.gender);
  if (a.emotion) parts.push(a.emotion);
  const match = face.identity && face.identity.matches && face.identity.matches[0];
  if (match) parts.push(match.name || match.person_id);
  return parts.join(" · ");
}

/**
 * Size the canvas to the displayed media and draw one frame's faces.
 * @param {HTMLCanvasElement} canvas
 * @param {{faces: object[]}} frame
 * @param {number} sourceWidth width of the analysed frame in pixels (the bbox space)
 * @param {number} sourceHeight
 * @param {number} width displayed width in CSS pixels
 * @param {number} height
 * @returns {number} the number of faces drawn
 */
export function drawFrame(canvas, frame, sourceWidth, sourceHeight, width, height) {
  canvas.width = Math.max(1, Math.round(width));
  canvas.height = Math.max(1, Math.round(height));
  canvas.style.width = `${canvas.width}px`;
  canvas.style.height = `${canvas.height}px`;
  const ctx = canvas.getContext("2d");
  ctx.clearRect(0, 0, canvas.width, canvas.height);
  const faces = (frame && frame.faces) || [];
  const sx = canvas.width / (sourceWidth || canvas.width);
  const sy = canvas.height / (sourceHeight || canvas.height);
  ctx.lineWidth = 2;
  ctx.font = "12px system-ui, sans-serif";
  for (const face of faces) {
    const [x, y, w, h] = face.bbox;
    ctx.strokeStyle = BOX_COLOUR;
    ctx.strokeRect(x * sx, y * sy, w * sx, h * sy);
    const label = labelOf(face);
    if (label) {
      const textWidth = ctx.measureText(label).width + 6;
      const top = Math.max(0, y * sy - 16);
      ctx.fillStyle = BOX_COLOUR;
      ctx.fillRect(x * sx - 1, top, textWidth, 16);
      ctx.fillStyle = "#000";
      ctx.fillText(label, x * sx + 2, top + 12);
    }
    ctx.fillStyle = LANDMARK_COLOUR;
    for (const [px, py] of landmarksOf(face)) {
      ctx.beginPath();
      ctx.arc(px * sx, py * sy, 1.8, 0, 2 * Math.PI);
      ctx.fill();
    }
  }
  canvas.dataset.faces = String(faces.length);
  return faces.length;
}

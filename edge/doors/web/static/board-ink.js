// The board's ink layer, shared by the board page and the student page: the page on show (a picture,
// a rendered PDF page, or a courseware page in a frame) under a canvas of strokes. It follows the box's
// `board.*` events (from the data channel or /api/events) and its `board.state` snapshots; every event
// carries `seq`, and one a snapshot already holds is dropped. Points are [x, y, t, pressure], x and y
// in 0..1 of the board (16:9), widths a fraction of its width.

export const ASPECT = 16 / 9;

export class InkLayer {
  constructor(root) {
    this.root = root;
    this.canvas = root.querySelector("canvas");
    this.image = root.querySelector("img");
    this.frame = root.querySelector("iframe");
    this.strokes = new Map();
    this.seq = 0;
    this.page = null;
    this.onPage = null;
    this.pending = false;
    new ResizeObserver(() => this.render()).observe(root);
  }

  // A `board.*` message from the box; true when it changed what is drawn.
  apply(message) {
    if (message.type === "board.state") return this.state(message);
    if (typeof message.seq === "number" && message.seq <= this.seq) return false;
    if (typeof message.seq === "number") this.seq = message.seq;
    const stroke = this.strokes.get(message.id);
    if (message.type === "board.stroke.begin") {
      if (!stroke) this.strokes.set(message.id, { ...message, points: [...(message.points || [])] });
    } else if (message.type === "board.stroke.points") {
      if (stroke && !stroke.local) stroke.points.push(...message.points);
    } else if (message.type === "board.stroke.end") {
      if (stroke) stroke.done = true;
    } else if (message.type === "board.undo") {
      this.strokes.delete(message.id);
    } else if (message.type === "board.clear") {
      this.strokes.clear();
    } else if (message.type === "board.page") {
      this.showPage(message.page, message.strokes || []);
    } else {
      return false;
    }
    this.render();
    return true;
  }

  // A snapshot (`board.state`): the first of a series resets the page and strokes.
  state(message) {
    if (message.reset) {
      this.seq = message.seq;
      this.showPage(message.page, []);
    } else if (message.seq !== this.seq) {
      return false;
    }
    for (const stroke of message.strokes || []) this.strokes.set(stroke.id, { ...stroke });
    this.render();
    return true;
  }

  showPage(page, strokes) {
    this.page = page && page.url ? page : null;
    this.strokes = new Map(strokes.map((s) => [s.id, { ...s }]));
    const picture = this.page && this.page.image;
    const html = this.page && !picture && /html/.test(this.page.type);
    this.image.hidden = !picture;
    if (picture && this.image.getAttribute("src") !== picture) this.image.src = picture;
    if (this.frame) {
      this.frame.hidden = !html;
      if (html && this.frame.getAttribute("src") !== this.page.url) this.frame.src = this.page.url;
    }
    this.root.classList.toggle("has-page", Boolean(this.page));
    if (this.onPage) this.onPage(this.page);
  }

  hasInk() {
    return this.strokes.size > 0;
  }

  // Redraw on the next frame (many events in a row draw once).
  render() {
    if (this.pending) return;
    this.pending = true;
    requestAnimationFrame(() => {
      this.pending = false;
      this.draw();
    });
  }

  draw() {
    const box = this.root.getBoundingClientRect();
    const ratio = window.devicePixelRatio || 1;
    const width = Math.max(1, Math.round(box.width * ratio));
    const height = Math.max(1, Math.round(box.height * ratio));
    if (this.canvas.width !== width || this.canvas.height !== height) {
      this.canvas.width = width;
      this.canvas.height = height;
    }
    const ctx = this.canvas.getContext("2d");
    ctx.clearRect(0, 0, width, height);
    for (const stroke of this.strokes.values()) drawStroke(ctx, stroke, width, height);
  }
}

export function drawStroke(ctx, stroke, width, height) {
  const points = stroke.points || [];
  if (!points.length) return;
  ctx.save();
  ctx.lineCap = "round";
  ctx.lineJoin = "round";
  ctx.strokeStyle = stroke.color || "#000000";
  ctx.fillStyle = ctx.strokeStyle;
  if (stroke.tool === "highlighter") ctx.globalAlpha = 0.35;
  if (stroke.tool === "eraser") ctx.globalCompositeOperation = "destination-out";
  const base = Math.max(1, (stroke.width || 0.004) * width);
  if (points.length === 1) {
    ctx.beginPath();
    ctx.arc(points[0][0] * width, points[0][1] * height, base / 2, 0, 2 * Math.PI);
    ctx.fill();
  }
  for (let i = 1; i < points.length; i++) {
    const [x0, y0] = points[i - 1];
    const [x1, y1, , p] = points[i];
    ctx.lineWidth = stroke.tool === "pen" ? base * (0.5 + (p ?? 0.5)) : base;
    ctx.beginPath();
    ctx.moveTo(x0 * width, y0 * height);
    ctx.lineTo(x1 * width, y1 * height);
    ctx.stroke();
  }
  ctx.restore();
}

/**
 * A hand-written SVG chart of the sequential scenario: one panel per phase (ADD, DEL,
 * ADD+DEL), a group per attachment count, a bar per contender at its median with a p10–p90
 * whisker and the median written above.
 *
 * @module
 */
import { CONTENDERS } from "./_fixture.ts";
import type { BenchResults } from "./_report.ts";
import { phases } from "./_report.ts";

const COLORS: Record<string, string> = {
  podplex: "#2b6cb0",
  reference: "#dd6b20",
  floor: "#718096",
  serve: "#2f855a",
  artifact: "#6b46c1",
  thick: "#c05621",
};
const PANEL_W = 300;
const PANEL_H = 260;
const TOP = 60;
const LEFT = 50;
const BAR_W = 22;

const esc = (s: string) => s.replace(/&/g, "&amp;").replace(/</g, "&lt;");

function text(x: number, y: number, s: string, extra = ""): string {
  return `<text x="${x.toFixed(1)}" y="${y.toFixed(1)}" ${extra}>${esc(s)}</text>`;
}

function panel(r: BenchResults, key: "add" | "del" | "addDel", title: string, x0: number): string {
  const cells = r.sequential.map((s) => CONTENDERS.map((c) => phases(s.contenders[c])[key]));
  const max = Math.max(...cells.flat().map((s) => s.p90)) * 1.15 || 1;
  const y = (v: number) => TOP + PANEL_H - (v / max) * PANEL_H;
  const out: string[] = [
    text(x0 + PANEL_W / 2, TOP - 20, title, 'text-anchor="middle" font-weight="bold"'),
  ];
  out.push(
    `<line x1="${x0}" y1="${TOP + PANEL_H}" x2="${x0 + PANEL_W}" y2="${
      TOP + PANEL_H
    }" stroke="#333"/>`,
  );
  for (let t = 0; t <= 4; t++) {
    const v = (max / 4) * t;
    out.push(
      `<line x1="${x0}" y1="${y(v).toFixed(1)}" x2="${x0 + PANEL_W}" y2="${
        y(v).toFixed(1)
      }" stroke="#eee"/>`,
    );
    out.push(text(x0 - 4, y(v) + 4, v.toFixed(0), 'text-anchor="end" font-size="10"'));
  }
  const groupW = PANEL_W / r.sequential.length;
  r.sequential.forEach((s, g) => {
    const gx = x0 + g * groupW + (groupW - BAR_W * CONTENDERS.length) / 2;
    CONTENDERS.forEach((c, i) => {
      const m = cells[g][i];
      const bx = gx + i * BAR_W;
      const cx = bx + BAR_W / 2 - 1;
      out.push(
        `<rect x="${bx.toFixed(1)}" y="${y(m.p50).toFixed(1)}" width="${BAR_W - 2}" ` +
          `height="${(TOP + PANEL_H - y(m.p50)).toFixed(1)}" fill="${COLORS[c]}"/>`,
        `<line x1="${cx.toFixed(1)}" y1="${y(m.p10).toFixed(1)}" x2="${cx.toFixed(1)}" ` +
          `y2="${y(m.p90).toFixed(1)}" stroke="#000"/>`,
        text(cx, y(m.p90) - 4, m.p50.toFixed(0), 'text-anchor="middle" font-size="9"'),
      );
    });
    out.push(
      text(
        x0 + g * groupW + groupW / 2,
        TOP + PANEL_H + 16,
        `${s.attachments} att.`,
        'text-anchor="middle"',
      ),
    );
  });
  return out.join("\n");
}

/** The SVG document. */
export function chart(r: BenchResults): string {
  const width = LEFT + 3 * (PANEL_W + LEFT);
  const height = TOP + PANEL_H + 70;
  const legend = CONTENDERS.map((c, i) =>
    `<rect x="${LEFT + i * 130}" y="${height - 22}" width="12" height="12" fill="${COLORS[c]}"/>` +
    text(LEFT + i * 130 + 16, height - 12, c)
  ).join("\n");
  const title = `podplex vs reference CNI plugins vs ip -batch floor: ms per pod, median with ` +
    `p10–p90 (${r.options.pods} pods x ${r.options.rounds} rounds, ${r.date.slice(0, 10)})`;
  return [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" ` +
    `font-family="sans-serif" font-size="12">`,
    `<rect width="100%" height="100%" fill="#fff"/>`,
    text(LEFT, 20, title),
    panel(r, "add", "ADD", LEFT),
    panel(r, "del", "DEL", LEFT + PANEL_W + LEFT),
    panel(r, "addDel", "ADD+DEL", LEFT + 2 * (PANEL_W + LEFT)),
    legend,
    "</svg>",
    "",
  ].join("\n");
}

/**
 * Stacked bar charts (Chart.js, tree-shaken to the bar chart pieces). The table next to each chart
 * carries the same numbers for screen readers; the canvas gets a short label.
 */
import { BarController, BarElement, CategoryScale, Chart, Legend, LinearScale, Tooltip } from "chart.js";

Chart.register(BarController, BarElement, CategoryScale, LinearScale, Legend, Tooltip);

const PALETTE = ["#3b6fb6", "#e0803a", "#4a9a5b", "#c94c4c", "#7a5fb0", "#2a9d9d", "#b08a2e", "#8c8c8c"];

export interface Series {
  label: string;
  data: number[];
}

export function stackedBars(
  canvas: HTMLCanvasElement,
  labels: string[],
  series: Series[],
  yTitle: string,
  tick: (v: number) => string,
): Chart {
  return new Chart(canvas, {
    type: "bar",
    data: {
      labels,
      datasets: series.map((s, i) => ({
        label: s.label,
        data: s.data,
        backgroundColor: PALETTE[i % PALETTE.length],
        stack: "all",
        maxBarThickness: 48,
      })),
    },
    options: {
      animation: false,
      responsive: true,
      maintainAspectRatio: false,
      interaction: { mode: "index", intersect: false },
      scales: {
        x: { stacked: true },
        y: {
          stacked: true,
          beginAtZero: true,
          title: { display: true, text: yTitle },
          ticks: { callback: (v) => tick(Number(v)) },
        },
      },
      plugins: {
        legend: { position: "bottom" },
        tooltip: { callbacks: { label: (ctx) => `${ctx.dataset.label ?? ""}: ${tick(Number(ctx.raw))}` } },
      },
    },
  });
}

/** A canvas in a sized box (Chart.js fills its parent), labelled for assistive tech. */
export function chartBox(label: string): { box: HTMLDivElement; canvas: HTMLCanvasElement } {
  const canvas = document.createElement("canvas");
  canvas.setAttribute("role", "img");
  canvas.setAttribute("aria-label", label);
  const box = document.createElement("div");
  box.className = "chart";
  box.appendChild(canvas);
  return { box, canvas };
}

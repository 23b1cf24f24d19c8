/**
 * Build progress: a bar with bytes, MB/s and ETA on a TTY; sparse plain lines otherwise
 * (logs, CI), so a 93 GB conversion neither floods a log file nor looks hung.
 */
import cliProgress from "cli-progress";

export interface Progress {
  add(bytes: number): void;
  stop(): void;
}

const MB = 1e6;

function fmtBytes(n: number): string {
  return n >= 1e9 ? `${(n / 1e9).toFixed(2)} GB` : `${(n / MB).toFixed(1)} MB`;
}

export function createProgress(
  total: number,
  label: string,
  stream: NodeJS.WriteStream = process.stderr,
  quiet = false,
): Progress {
  const t0 = performance.now();
  let done = 0;
  if (quiet) return { add: (n) => void (done += n), stop: () => {} };
  if (stream.isTTY) {
    const bar = new cliProgress.SingleBar(
      {
        format: `${label} [{bar}] {percentage}% | {doneH} / {totalH} | {rate} MB/s | ETA {eta_formatted}`,
        stream,
        hideCursor: true,
        etaBuffer: 50,
        fps: 5,
      },
      cliProgress.Presets.shades_classic,
    );
    const fields = () => ({
      doneH: fmtBytes(done),
      totalH: fmtBytes(total),
      rate: (done / MB / Math.max(1e-3, (performance.now() - t0) / 1000)).toFixed(0),
    });
    bar.start(Math.max(1, total), 0, fields());
    return {
      add(n) {
        done += n;
        bar.update(done, fields());
      },
      stop() {
        bar.update(Math.max(1, total), fields());
        bar.stop();
      },
    };
  }
  // Plain output: a line every 10% or every 15 s, whichever comes first.
  let nextPct = 10;
  let lastLine = t0;
  return {
    add(n) {
      done += n;
      const pct = total > 0 ? (100 * done) / total : 100;
      const now = performance.now();
      if (pct >= nextPct || now - lastLine > 15000) {
        const s = (now - t0) / 1000;
        const rate = done / MB / Math.max(1e-3, s);
        const eta = rate > 0 ? (total - done) / MB / rate : 0;
        stream.write(
          `${label}: ${pct.toFixed(0)}% ${fmtBytes(done)} / ${fmtBytes(total)}, ${rate.toFixed(0)} MB/s, ETA ${eta.toFixed(0)} s\n`,
        );
        while (nextPct <= pct) nextPct += 10;
        lastLine = now;
      }
    },
    stop() {},
  };
}

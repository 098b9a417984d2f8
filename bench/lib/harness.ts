/**
 * The benchmark harness: what every suite returns, how results are summarised, and where they go.
 *
 * A suite measures in rounds. Every measurement keeps one value per round (alternating between the
 * things compared, so drift hits all of them alike), and comparisons are ratios computed per round
 * from values of the same round. Reports give the median and the spread (min, max) of the rounds.
 *
 * `writeResults` writes, for suite `s`:
 *   docs/benchmarks/s.json  machine, versions, commit, settings, every round of every measurement
 *   docs/benchmarks/s.md    a Markdown summary (tables, the charts)
 *   docs/benchmarks/s-*.svg the charts (horizontal bars of medians with min–max whiskers)
 * With --quick the files go to a temporary directory instead (CI checks the harness runs; quick numbers
 * mean nothing and are never committed).
 */
import { execFileSync } from 'node:child_process';
import { mkdir, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';

export interface SuiteContext {
  /** Seconds, tiny data: proves the suite runs (CI). */
  quick: boolean;
  /** Rounds per measurement (≥ 3 unless quick). */
  rounds: number;
  /** A fresh PostgreSQL database of this run (dropped at the end). */
  databaseUrl: string;
  redisUrl: string | undefined;
  /** Where results are written. */
  outDir: string;
  /** A scratch directory of this run (removed at the end). */
  tmpDir: string;
  log(message: string): void;
  signal: AbortSignal;
}

export type Better = 'higher' | 'lower';

export interface Measurement {
  /** e.g. `larder GET /v1/documents/{id} req/s` */
  name: string;
  unit: string;
  better: Better;
  /** One value per round. */
  values: number[];
  /** Groups rows in tables and charts (e.g. the endpoint). */
  group?: string;
}

export interface Ratio {
  /** e.g. `larder / fastapi, GET by id` */
  name: string;
  numerator: string;
  denominator: string;
  /** Per round: numerator value / denominator value of the same round. */
  values: number[];
  /** A goal to report against (never a test): e.g. 2.5. */
  target?: number;
}

export interface Chart {
  /** File name part: `<suite>-<id>.svg`. */
  id: string;
  title: string;
  unit: string;
  /** Measurement names, in display order. */
  measurements: string[];
}

export interface SuiteResult {
  suite: string;
  description: string;
  settings: Record<string, unknown>;
  measurements: Measurement[];
  ratios: Ratio[];
  charts: Chart[];
  /** Free-form lines for the summary (caveats, what was measured how). */
  notes: string[];
}

export interface Suite {
  name: string;
  description: string;
  run(ctx: SuiteContext): Promise<SuiteResult>;
}

export interface Summary {
  n: number;
  median: number;
  min: number;
  max: number;
  mean: number;
}

export function summarise(values: readonly number[]): Summary {
  const sorted = [...values].sort((a, b) => a - b);
  const at = (i: number) => sorted[i] ?? NaN;
  const mid = Math.floor(sorted.length / 2);
  return {
    n: sorted.length,
    median: sorted.length % 2 === 1 ? at(mid) : (at(mid - 1) + at(mid)) / 2,
    min: at(0),
    max: at(sorted.length - 1),
    mean: sorted.length === 0 ? NaN : sorted.reduce((s, v) => s + v, 0) / sorted.length,
  };
}

/** Ratio of two measurements, round by round (they must have the same number of rounds). */
export function ratio(
  name: string,
  numerator: Measurement,
  denominator: Measurement,
  target?: number,
): Ratio {
  if (numerator.values.length !== denominator.values.length)
    throw new Error(`ratio ${name}: ${numerator.values.length} vs ${denominator.values.length} rounds`);
  return {
    name,
    numerator: numerator.name,
    denominator: denominator.name,
    values: numerator.values.map((v, i) => v / (denominator.values[i] ?? NaN)),
    ...(target === undefined ? {} : { target }),
  };
}

/**
 * Runs `steps` for `rounds` rounds, alternating the order of the steps every round (round 1: a, b, c;
 * round 2: c, b, a; …) so a warming or drifting machine does not favour whoever goes first.
 */
export async function alternate<K extends string>(
  rounds: number,
  steps: Record<K, (round: number) => Promise<void>>,
): Promise<void> {
  const keys = Object.keys(steps) as K[];
  for (let round = 0; round < rounds; round++) {
    const order = round % 2 === 0 ? keys : [...keys].reverse();
    for (const key of order) await steps[key](round);
  }
}

function tryRun(command: string, args: string[]): string | null {
  try {
    return execFileSync(command, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim();
  } catch {
    return null;
  }
}

export interface MachineInfo {
  hostname: string;
  platform: string;
  kernel: string;
  cpuModel: string;
  cpus: number;
  memoryBytes: number;
  node: string;
  postgres: string | null;
  redis: string | null;
  commit: string | null;
  dirty: boolean;
  date: string;
}

export function machineInfo(databaseUrl?: string): MachineInfo {
  const status = tryRun('git', ['status', '--porcelain']);
  return {
    hostname: os.hostname(),
    platform: `${os.platform()} ${os.arch()}`,
    kernel: os.release(),
    cpuModel: os.cpus()[0]?.model ?? 'unknown',
    cpus: os.cpus().length,
    memoryBytes: os.totalmem(),
    node: process.version,
    postgres: databaseUrl ? tryRun('psql', [databaseUrl, '-Atc', 'show server_version']) : null,
    redis: tryRun('redis-server', ['--version']),
    commit: tryRun('git', ['rev-parse', 'HEAD']),
    dirty: status !== null && status.length > 0,
    date: new Date().toISOString(),
  };
}

const fmt = (x: number) =>
  !Number.isFinite(x) ? '–' : Math.abs(x) >= 100 ? Math.round(x).toLocaleString('en-US') : x.toPrecision(3);

/** The Markdown summary of a suite's result. */
export function markdown(result: SuiteResult, machine: MachineInfo, quick: boolean): string {
  const out: string[] = [
    `# Benchmark: ${result.suite}`,
    '',
    result.description,
    '',
    `Run ${machine.date} on ${machine.cpus} × ${machine.cpuModel}, ${fmt(machine.memoryBytes / 2 ** 30)} GiB, ` +
      `Node ${machine.node}, PostgreSQL ${machine.postgres ?? '?'}; commit ${machine.commit?.slice(0, 12) ?? '?'}` +
      `${machine.dirty ? ' (with uncommitted changes)' : ''}.${quick ? ' **Quick run: the numbers mean nothing.**' : ''}`,
    '',
    '| measurement | unit | median | min | max | rounds |',
    '| --- | --- | ---: | ---: | ---: | ---: |',
  ];
  for (const m of result.measurements) {
    const s = summarise(m.values);
    out.push(`| ${m.name} | ${m.unit} | ${fmt(s.median)} | ${fmt(s.min)} | ${fmt(s.max)} | ${s.n} |`);
  }
  if (result.ratios.length > 0) {
    out.push('', '| ratio (same round) | median | min | max | goal |', '| --- | ---: | ---: | ---: | ---: |');
    for (const r of result.ratios) {
      const s = summarise(r.values);
      const goal = r.target === undefined ? '' : `≥ ${r.target}${s.median >= r.target ? ' ✓' : ' ✗'}`;
      out.push(
        `| ${r.name} | ${s.median.toFixed(2)}× | ${s.min.toFixed(2)}× | ${s.max.toFixed(2)}× | ${goal} |`,
      );
    }
  }
  for (const chart of result.charts) out.push('', `![${chart.title}](${result.suite}-${chart.id}.svg)`);
  if (result.notes.length > 0) out.push('', ...result.notes.map((n) => `- ${n}`));
  out.push('', `Settings: \`${JSON.stringify(result.settings)}\``, '');
  return out.join('\n');
}

const escapeXml = (s: string) =>
  s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');

/** A horizontal bar chart of medians with min–max whiskers, as a standalone SVG document. */
export function barChart(chart: Chart, measurements: readonly Measurement[]): string {
  const rows = chart.measurements.map((name) => {
    const m = measurements.find((x) => x.name === name);
    if (!m) throw new Error(`chart ${chart.id}: no measurement ${name}`);
    return { name, ...summarise(m.values) };
  });
  const labelWidth = 12 + 7 * Math.max(...rows.map((r) => r.name.length));
  const plotWidth = 420;
  const rowHeight = 28;
  const top = 40;
  const width = labelWidth + plotWidth + 90;
  const height = top + rows.length * rowHeight + 30;
  const max = Math.max(...rows.map((r) => (Number.isFinite(r.max) ? r.max : 0)), 1e-9);
  const x = (v: number) => labelWidth + (Number.isFinite(v) ? (v / max) * plotWidth : 0);
  const parts = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" font-family="sans-serif" font-size="12">`,
    `<rect width="100%" height="100%" fill="#fff"/>`,
    `<text x="${width / 2}" y="20" text-anchor="middle" font-size="14" font-weight="bold">${escapeXml(chart.title)}</text>`,
  ];
  rows.forEach((r, i) => {
    const y = top + i * rowHeight;
    parts.push(
      `<text x="${labelWidth - 8}" y="${y + 16}" text-anchor="end">${escapeXml(r.name)}</text>`,
      `<rect x="${labelWidth}" y="${y + 4}" width="${Math.max(0, x(r.median) - labelWidth)}" height="${rowHeight - 10}" fill="#4878a8"/>`,
      `<line x1="${x(r.min)}" x2="${x(r.max)}" y1="${y + rowHeight / 2 - 1}" y2="${y + rowHeight / 2 - 1}" stroke="#222"/>`,
      `<line x1="${x(r.min)}" x2="${x(r.min)}" y1="${y + 8}" y2="${y + rowHeight - 10}" stroke="#222"/>`,
      `<line x1="${x(r.max)}" x2="${x(r.max)}" y1="${y + 8}" y2="${y + rowHeight - 10}" stroke="#222"/>`,
      `<text x="${x(r.max) + 6}" y="${y + 16}">${escapeXml(`${fmt(r.median)} ${chart.unit}`)}</text>`,
    );
  });
  parts.push(
    `<text x="${labelWidth}" y="${height - 8}" fill="#555">bars: median of ${rows[0]?.n ?? 0} rounds; whiskers: min–max</text>`,
    '</svg>',
  );
  return `${parts.join('\n')}\n`;
}

/** Writes `<suite>.json`, `<suite>.md` and the charts into `ctx.outDir`; returns the file paths. */
export async function writeResults(result: SuiteResult, ctx: SuiteContext): Promise<string[]> {
  const machine = machineInfo(ctx.databaseUrl);
  await mkdir(ctx.outDir, { recursive: true });
  const files: string[] = [];
  const json = path.join(ctx.outDir, `${result.suite}.json`);
  const summaries = Object.fromEntries(result.measurements.map((m) => [m.name, summarise(m.values)]));
  await writeFile(
    json,
    `${JSON.stringify({ ...result, machine, quick: ctx.quick, rounds: ctx.rounds, summaries }, null, 2)}\n`,
  );
  files.push(json);
  for (const chart of result.charts) {
    const svg = path.join(ctx.outDir, `${result.suite}-${chart.id}.svg`);
    await writeFile(svg, barChart(chart, result.measurements));
    files.push(svg);
  }
  const md = path.join(ctx.outDir, `${result.suite}.md`);
  await writeFile(md, markdown(result, machine, ctx.quick));
  files.push(md);
  return files;
}

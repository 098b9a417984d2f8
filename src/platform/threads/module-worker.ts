/**
 * Starts a worker thread from a module next to the caller, in both ways Larder runs:
 *  - built (`dist/`): the compiled `<name>.js` beside the caller;
 *  - from the TypeScript sources (tsx, vitest): Node 20 workers do not inherit the module hooks the main
 *    thread registered (and ignore `--import tsx` in `execArgv` for the entry), so a tiny bootstrap
 *    registers tsx inside the worker, then imports `<name>.ts`.
 *
 * @example
 *   const worker = startModuleWorker(import.meta.url, 'stream-thread', { resourceLimits: { maxOldGenerationSizeMb: 160 } });
 */
import { existsSync } from 'node:fs';
import { Worker, type WorkerOptions } from 'node:worker_threads';

export function startModuleWorker(callerUrl: string, name: string, options: WorkerOptions = {}): Worker {
  const compiled = new URL(`./${name}.js`, callerUrl);
  if (existsSync(compiled)) return new Worker(compiled, options);
  const source = new URL(`./${name}.ts`, callerUrl);
  const tsx = import.meta.resolve('tsx/esm/api');
  const code = `import(${JSON.stringify(tsx)}).then((tsx) => { tsx.register(); return import(${JSON.stringify(source.href)}); });`;
  return new Worker(code, { ...options, eval: true });
}

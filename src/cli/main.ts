import { limitHeapGrowth } from '../platform/heap.js';

// A worker caps its heap growth before its modules load (see platform/heap.ts).
if (process.argv.slice(2).find((arg) => !arg.startsWith('-')) === 'worker') limitHeapGrowth();
const { buildCli } = await import('./program.js');
await buildCli().parseAsync(process.argv);

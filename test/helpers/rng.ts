/** Seeded random numbers for reproducible test data: the engine's own generator (src/util/rng.ts). */
export { Rng } from '../../src/util/rng.ts';

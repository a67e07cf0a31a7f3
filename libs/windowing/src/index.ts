// Pure event-time windowing (see README.md): no I/O, no clock, deterministic, snapshot/restore exact.
export type { AddOutcome, WindowBounds, WindowEngineOptions, WindowInput, WindowResult, WindowSpec } from './types';
export { WindowEngine } from './window-engine';
export { alignedWindowStart, windowsOf } from './aligned-windows';
export { SnapshotError } from './snapshot-codec';
export { isValidTimeZone } from './zone-clock';

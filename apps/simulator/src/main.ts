#!/usr/bin/env node
// tollstream-simulator: realistic toll traffic for demos, tests and benchmarks. Logic: program.ts, run.ts, libs/simulator.
import { runSimulatorCli } from './program';

runSimulatorCli(process.argv.slice(2), { stdout: process.stdout, stderr: process.stderr, handleSignals: true, env: process.env }).then(
  (code) => {
    process.exitCode = code;
  },
  (error: unknown) => {
    process.stderr.write(`error: ${error instanceof Error ? error.message : String(error)}\n`);
    process.exitCode = 1;
  },
);

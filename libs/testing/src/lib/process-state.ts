import { readFileSync } from 'node:fs';

/**
 * Is `pid` a running (not zombie) process? `kill(pid, 0)` alone is not enough: on machines whose
 * PID 1 does not reap orphans (this machine kind's init does not), a killed orphan stays a zombie
 * forever and `kill -0` still succeeds. Uses /proc where it exists, `kill(pid, 0)` elsewhere.
 */
export function isProcessRunning(pid: number): boolean {
  if (!Number.isInteger(pid) || pid <= 0) return false;
  let stat: string | undefined;
  try {
    stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT' && hasProcFs()) return false;
  }
  if (stat !== undefined) {
    // "<pid> (<comm>) <state> …": comm may itself contain spaces and parentheses.
    const state = stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3);
    return state !== 'Z' && state !== 'X' && state !== '';
  }
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
}

let procFs: boolean | undefined;
function hasProcFs(): boolean {
  if (procFs === undefined) {
    try {
      readFileSync('/proc/self/stat', 'utf8');
      procFs = true;
    } catch {
      procFs = false;
    }
  }
  return procFs;
}

/**
 * POSIX sh function `alive PID` with the same meaning, for the watchdog script
 * (zombies count as dead; falls back to `kill -0` without /proc).
 */
export const SH_ALIVE_FUNCTION =
  'alive() { if [ -r /proc/self/stat ]; then ' +
  '{ read -r l < "/proc/$1/stat"; } 2>/dev/null || return 1; ' +
  's=${l##*) }; s=${s%% *}; [ "$s" != Z ] && [ "$s" != X ]; ' +
  'else kill -0 "$1" 2>/dev/null; fi; }';

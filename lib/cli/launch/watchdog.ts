/**
 * A sidecar that cleans up when the launcher itself is killed with SIGKILL (or crashes so hard
 * that no handler runs), the one case the launcher cannot handle: its ranks are in their own
 * process groups, so without this they would live on as orphans.
 *
 * The launcher tells the sidecar over a pipe which process groups are live (`+pgid`, `-pgid`);
 * `bye` ends it quietly. If the pipe closes without `bye`, the launcher is gone: the sidecar
 * sends SIGTERM to every listed group, waits the grace period, sends SIGKILL, and exits.
 * The sidecar is detached (its own session), so a Ctrl-C meant for the launcher does not reach it.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import type { Socket } from 'node:net';
import { liveGroups, signalGroup } from './process-group';

/** The launcher's side of the sidecar. */
export interface Watchdog {
  /** Adds process groups to clean up if the launcher dies. */
  add(pgids: readonly number[]): void;
  /** Removes groups that are known to be gone (so a reused id is never signalled). */
  remove(pgids: readonly number[]): void;
  /** Ends the sidecar without it touching anything. */
  close(): void;
}

const noop: Watchdog = { add: () => undefined, remove: () => undefined, close: () => undefined };

/**
 * Starts the sidecar (this same file run by node). Under a TypeScript runner (tests that import
 * the sources) there is no compiled file to run, and a no-op watchdog is returned.
 */
export function startWatchdog(graceMs: number): Watchdog {
  if (!__filename.endsWith('.js')) return noop;
  let child: ChildProcess;
  try {
    child = spawn(process.execPath, [__filename, String(graceMs)], { detached: true, stdio: ['pipe', 'ignore', 'ignore'] });
  } catch {
    return noop;
  }
  // Neither the sidecar nor its pipe may keep the launcher running.
  child.unref();
  const pipe = child.stdin as Socket | null;
  if (!pipe) return noop;
  pipe.unref();
  pipe.on('error', () => undefined); // it died: nothing else to do
  const send = (line: string): void => {
    if (pipe.writable) pipe.write(`${line}\n`);
  };
  return {
    add: (pgids) => pgids.forEach((g) => send(`+${g}`)),
    remove: (pgids) => pgids.forEach((g) => send(`-${g}`)),
    close: () => {
      send('bye');
      pipe.end();
    },
  };
}

/** The sidecar's main loop. */
function runSidecar(graceMs: number): void {
  const groups = new Set<number>();
  let clean = false;
  let buffer = '';
  process.stdin.setEncoding('utf8');
  process.stdin.on('data', (chunk: string) => {
    buffer += chunk;
    for (let i = buffer.indexOf('\n'); i >= 0; i = buffer.indexOf('\n')) {
      const line = buffer.slice(0, i);
      buffer = buffer.slice(i + 1);
      if (line === 'bye') clean = true;
      else if (line.startsWith('+')) groups.add(Number(line.slice(1)));
      else if (line.startsWith('-')) groups.delete(Number(line.slice(1)));
    }
  });
  let done = false;
  const finish = async (): Promise<void> => {
    if (done) return;
    done = true;
    if (clean) process.exit(0);
    let live = liveGroups([...groups]);
    for (const g of live) signalGroup(g, 'SIGTERM');
    const deadline = Date.now() + graceMs;
    while (live.size > 0 && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 50));
      live = liveGroups([...live]);
    }
    for (const g of live) signalGroup(g, 'SIGKILL');
    process.exit(0);
  };
  process.stdin.on('end', () => void finish());
  process.stdin.on('close', () => void finish());
  process.stdin.on('error', () => void finish());
}

if (require.main === module) {
  const grace = Number(process.argv[2]);
  runSidecar(Number.isFinite(grace) && grace >= 0 ? grace : 30000);
}

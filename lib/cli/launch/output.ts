/**
 * Where a rank's output goes: the launcher's console with every line prefixed by the rank
 * (`[rank 3] ...`), a file per rank and stream, or both (--tee).
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { Readable } from 'node:stream';
import type { StdStreams } from './options';

/** Receives text for the console (the launcher's stdout or stderr). */
export type Sink = (text: string) => void;

/**
 * Prefixes complete lines; keeps a partial last line until its newline arrives (or the stream
 * ends), so lines of different ranks never interleave mid-line.
 */
export class LinePrefixer {
  private pending = '';
  constructor(
    private readonly prefix: string,
    private readonly sink: Sink,
  ) {}

  /** Adds a chunk and writes every line it completes. */
  push(chunk: string): void {
    const text = this.pending + chunk;
    const last = text.lastIndexOf('\n');
    if (last < 0) {
      this.pending = text;
      return;
    }
    this.pending = text.slice(last + 1);
    const lines = text.slice(0, last).split('\n');
    this.sink(lines.map((l) => `${this.prefix}${l}\n`).join(''));
  }

  /** Writes the unfinished last line, if any, with a newline. */
  end(): void {
    if (this.pending !== '') this.sink(`${this.prefix}${this.pending}\n`);
    this.pending = '';
  }
}

/** How one rank's output is routed. */
export interface RankOutputOptions {
  readonly rank: number;
  /** Streams that go to files only. */
  readonly redirects: StdStreams;
  /** Streams that go to files and the console. */
  readonly tee: StdStreams;
  /** Directory for this rank's files (created when a file is needed). */
  readonly dir: string | undefined;
  readonly stdout: Sink;
  readonly stderr: Sink;
}

/** Routes the stdout and stderr pipes of one rank; {@link RankOutput.close} flushes everything. */
export class RankOutput {
  private readonly done: Promise<void>[] = [];

  constructor(opts: RankOutputOptions, stdout: Readable | null, stderr: Readable | null) {
    this.route(opts, stdout, 1, 'stdout.log', opts.stdout);
    this.route(opts, stderr, 2, 'stderr.log', opts.stderr);
  }

  /** The path of a rank's file for one stream (whether or not it is used). */
  static filePath(dir: string, stream: 'stdout' | 'stderr'): string {
    return path.join(dir, `${stream}.log`);
  }

  private route(opts: RankOutputOptions, stream: Readable | null, bit: 1 | 2, file: string, sink: Sink): void {
    if (!stream) return;
    const toFile = ((opts.redirects | opts.tee) & bit) !== 0 && opts.dir !== undefined;
    const toConsole = !toFile || (opts.tee & bit) !== 0;
    let fileStream: fs.WriteStream | undefined;
    if (toFile && opts.dir !== undefined) {
      fs.mkdirSync(opts.dir, { recursive: true });
      fileStream = fs.createWriteStream(path.join(opts.dir, file));
    }
    const prefixer = toConsole ? new LinePrefixer(`[rank ${opts.rank}] `, sink) : undefined;
    stream.setEncoding('utf8');
    stream.on('data', (chunk: string) => {
      prefixer?.push(chunk);
      fileStream?.write(chunk);
    });
    this.done.push(
      new Promise<void>((resolve) => {
        // 'close' rather than 'end': a stream destroyed by an error never emits 'end'.
        stream.once('close', () => {
          prefixer?.end();
          if (fileStream) fileStream.end(() => resolve());
          else resolve();
        });
      }),
    );
  }

  /**
   * Resolves once both pipes closed and the files are flushed, or after `timeoutMs`: a process
   * the rank started in the background may hold its pipes open after the rank itself is gone.
   */
  async close(timeoutMs: number): Promise<void> {
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([
      Promise.all(this.done),
      new Promise<void>((resolve) => {
        timer = setTimeout(resolve, timeoutMs);
      }),
    ]);
    if (timer) clearTimeout(timer);
  }
}

/** Where the command writes: the process's streams, or a test's buffers (`run(argv, io)`). */
export interface Io {
  stdout: (text: string) => void;
  stderr: (text: string) => void;
  /** Progress is drawn only on a terminal. */
  isTTY: boolean;
}

export const processIo: Io = {
  stdout: (t) => process.stdout.write(t),
  stderr: (t) => process.stderr.write(t),
  isTTY: Boolean(process.stderr.isTTY),
};

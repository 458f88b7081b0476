// A one-line progress bar redrawn on stderr, only on a terminal: off a TTY it prints nothing,
// so logs and pipes never fill with carriage returns.
export interface Progress {
  add(bytes: number): void;
  done(): void;
}

const silent: Progress = { add() {}, done() {} };

function mib(n: number): string {
  return `${(n / 1048576).toFixed(1)} MiB`;
}

export function progressBar(label: string, total: number, tty: boolean): Progress {
  if (!tty || total <= 0) return silent;
  let sent = 0;
  let last = 0;
  const draw = () => {
    const width = 30;
    const filled = Math.min(width, Math.round((sent / total) * width));
    const pct = Math.min(100, Math.floor((sent / total) * 100));
    process.stderr.write(
      `\r${label} [${"#".repeat(filled)}${" ".repeat(width - filled)}] ${pct}% ${mib(sent)}/${mib(total)}`,
    );
  };
  return {
    add(bytes) {
      sent += bytes;
      const now = Date.now();
      if (now - last > 100) {
        last = now;
        draw();
      }
    },
    done() {
      sent = total;
      draw();
      process.stderr.write("\n");
    },
  };
}

export interface LiveLine {
  show(text: string): void;
  done(): void;
}

const quiet: LiveLine = { show() {}, done() {} };

/** A status line redrawn in place on stderr (a terminal only); `done` ends it with a newline. */
export function liveLine(tty: boolean): LiveLine {
  if (!tty) return quiet;
  let width = 0;
  let shown = false;
  return {
    show(text) {
      // Padded to the last line's width, so a shorter line leaves no tail behind.
      process.stderr.write(`\r${text.padEnd(width)}`);
      width = text.length;
      shown = true;
    },
    done() {
      if (shown) process.stderr.write("\n");
      shown = false;
      width = 0;
    },
  };
}

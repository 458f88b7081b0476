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

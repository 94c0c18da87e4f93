// FileWriterPacing (src/spool/pacing.ts) decides from a clock and byte counts it is handed, so
// these tests drive it with made-up times: no timing in the test.
import { describe, expect, it } from 'vitest';
import { FileWriterPacing } from '../src/spool/pacing.js';

const settings = { underLoadBytesPerS: 1000_000, windowMs: 100, behindBytes: 10_000_000 };

describe('FileWriterPacing', () => {
  it('is paced while traffic is light, and full once the command has ended', () => {
    const p = new FileWriterPacing(settings);
    let arrived = 0;
    for (let t = 0; t <= 1000; t += 20) {
      arrived += 1000; // 50 kB/s
      expect(p.mode(t, arrived, 0, true)).toBe('paced');
    }
    expect(p.mode(1020, arrived, 5000, false)).toBe('full');
  });

  it('waits as soon as a window quota has arrived, without waiting for the window to end', () => {
    const p = new FileWriterPacing(settings);
    expect(p.mode(0, 0, 0, true)).toBe('paced');
    expect(p.mode(10, 50_000, 50_000, true)).toBe('paced'); // half the 100 kB quota
    expect(p.mode(20, 100_001, 100_001, true)).toBe('wait'); // 20 ms into the window
  });

  it('keeps waiting while the load lasts, and goes back to paced a window after it stops', () => {
    const p = new FileWriterPacing(settings);
    let arrived = 0;
    let t = 0;
    p.mode(t, arrived, 0, true);
    const underLoad: string[] = [];
    for (; t < 2000; t += 20) {
      arrived += 40_000; // 2 MB/s
      underLoad.push(p.mode(t + 20, arrived, arrived, true));
    }
    // The third tick brings 120 kB, past the 100 kB quota; from then on it waits throughout.
    expect(underLoad.slice(0, 2)).toEqual(['paced', 'paced']);
    expect(new Set(underLoad.slice(2))).toEqual(new Set(['wait']));
    // Quiet from here: the window that covers only quiet time decides.
    const modes: string[] = [];
    for (let k = 0; k < 15; k++) {
      t += 20;
      modes.push(p.mode(t, arrived, arrived, true));
    }
    expect(modes[0]).toBe('wait');
    expect(modes.at(-1)).toBe('paced');
    expect(modes.indexOf('paced')).toBeLessThanOrEqual(10); // within two windows
  });

  it('works without pause under load once the backlog passes behindBytes', () => {
    const p = new FileWriterPacing(settings);
    p.mode(0, 0, 0, true);
    expect(p.mode(50, 2_000_000, 2_000_000, true)).toBe('wait');
    expect(p.mode(60, 10_000_000, 10_000_000, true)).toBe('full');
  });

  it('measures a late tick over the time that really passed', () => {
    const p = new FileWriterPacing(settings);
    p.mode(0, 0, 0, true);
    // 150 kB in 300 ms is 500 kB/s: under the rate, though more than one window's quota arrived.
    // The flip inside the window does not happen because the tick comes after the window's end.
    expect(p.mode(300, 150_000, 150_000, true)).toBe('paced');
  });
});

import { describe, expect, it } from 'vitest';
import { boundHeapGrowth } from './heap.js';

const GiB = 1024 * 1024 * 1024;

describe('boundHeapGrowth', () => {
  it('leaves a growing factor given on the command line alone', () => {
    expect(boundHeapGrowth(['--heap-growing-percent=300'], 4 * GiB)).toBe(false);
    expect(boundHeapGrowth(['--inspect', '--heap_growing_percent=50'], 4 * GiB)).toBe(false);
  });

  it('leaves a heap limited below 2 GiB (a container, --max-old-space-size) to V8, which grows it 2x at most', () => {
    expect(boundHeapGrowth([], 512 * 1024 * 1024)).toBe(false);
    expect(boundHeapGrowth(['--max-old-space-size=1024'], 1.1 * GiB)).toBe(false);
  });

  it('sets the factor on a large heap, whatever other flags there are', () => {
    expect(boundHeapGrowth([], 4 * GiB)).toBe(true);
    expect(boundHeapGrowth(['--heap-growing-percentage-x'], 2 * GiB)).toBe(true);
  });
});

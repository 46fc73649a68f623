import { defineConfig } from 'vitest/config';

/** Everything that starts the Pub/Sub or Storage emulator. */
const E2E = ['test/e2e/**/*.test.ts', 'test/support/emulators.test.ts'];
/**
 * No emulator, but seconds each (half the time of everything else together): the contributor
 * guide runs vitest four times in a copy of the repository, the fuzzer parses 120 archives, the
 * interrupted and full-disk runs start the command in child processes.
 * `npm test` runs them; the edit loop (`npm run test:unit`) does not wait for them.
 */
const SLOW = [
  'test/contracts/contributor-guide.test.ts',
  'test/robustness/fuzz.test.ts',
  'test/robustness/interrupted.test.ts',
  'test/robustness/full-disk.test.ts',
];

export default defineConfig({
  test: {
    testTimeout: 60_000,
    hookTimeout: 60_000,
    projects: [
      {
        extends: true,
        test: {
          name: 'unit',
          include: ['src/**/*.test.ts', 'parsers/**/*.test.ts', 'test/**/*.test.ts'],
          exclude: [...E2E, ...SLOW],
        },
      },
      { extends: true, test: { name: 'slow', include: SLOW } },
      {
        extends: true,
        test: {
          name: 'e2e',
          include: E2E,
          // One Pub/Sub and one Storage emulator for the whole run, handed to the files by inject().
          globalSetup: ['test/support/global-setup.ts'],
        },
      },
    ],
  },
});

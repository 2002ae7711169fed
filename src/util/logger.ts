// Structured JSON logging (pino), one line per event. Field names follow etcd's zap output where a user
// might grep for them ("msg", "level", "ts").
import pino from 'pino';

export type Logger = pino.Logger;

export function createLogger(level = 'info', destination: 'stderr' | 'stdout' = 'stderr'): Logger {
  return pino(
    {
      level: level === 'panic' ? 'fatal' : level,
      messageKey: 'msg',
      timestamp: () => `,"ts":"${new Date().toISOString()}"`,
      formatters: { level: (label) => ({ level: label }) },
      base: undefined,
    },
    pino.destination({ fd: destination === 'stderr' ? 2 : 1, sync: true }),
  );
}

/** A logger that drops everything, for unit tests of modules that take a logger. */
export function silentLogger(): Logger {
  return pino({ level: 'silent' });
}

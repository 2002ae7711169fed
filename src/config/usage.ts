// --help text: our own short wording, grouped and ordered like etcd's.
import { knownFeatureLines } from './features';
import { FLAGS, type FlagGroup } from './flags';

const GROUP_ORDER: FlagGroup[] = [
  'Member',
  'Clustering',
  'Security',
  'Auth',
  'Profiling and Monitoring',
  'Logging',
  'Distributed tracing',
  'Former experimental features',
  'Unsafe',
];

export function usageText(program = 'etcd-ts'): string {
  const lines: string[] = [
    'Usage:',
    '',
    `  ${program} [flags]`,
    '    Start the server.',
    `  ${program} --version`,
    '    Print the version and exit.',
    `  ${program} -h | --help`,
    '    Print this help and exit.',
    `  ${program} --config-file <path>`,
    '    Read the configuration from a YAML file (keys are the flag names); other flags and ETCD_*',
    '    variables are then ignored.',
    '',
    'Flags take the forms --flag value, --flag=value, -flag value and -flag=value; booleans take',
    '--flag or --flag=true|false. Every flag --foo-bar may instead be set by the environment variable',
    'ETCD_FOO_BAR; setting both is an error. Durations use Go syntax (500ms, 2s, 1h30m).',
  ];
  for (const group of GROUP_ORDER) {
    lines.push('', `${group}:`);
    for (const f of FLAGS) {
      if (f.group !== group || f.hidden) continue;
      const def = f.kind === 'featureGates' ? '' : ` '${f.shown ?? f.def}'`;
      lines.push(`  --${f.name}${def}`);
      lines.push(`    ${f.help}`);
      if (f.kind === 'featureGates') for (const l of knownFeatureLines()) lines.push(`      ${l}`);
    }
  }
  lines.push('', 'Unsafe flags can break the guarantees of the consensus protocol: use them only to recover.', '');
  return lines.join('\n');
}

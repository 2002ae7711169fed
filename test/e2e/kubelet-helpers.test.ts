// The test kubelet's pure parts: Kubernetes' $(VAR) expansion and the one image it runs (two executables).
// No control plane, no root.
import * as path from 'path';
import { etcdTsBin, repoRoot } from '../helpers';
import { IMAGE_ROOT, expandVars, imageEntrypoint } from './kubelet';

describe('$(VAR) expansion as Kubernetes does it', () => {
  const vars = new Map([
    ['POD_NAME', 'main-0'],
    ['EMPTY', ''],
  ]);
  test.each([
    ['--name=$(POD_NAME)', '--name=main-0'],
    ['$(POD_NAME).main-peer.db.svc', 'main-0.main-peer.db.svc'],
    ['$(UNDEFINED)', '$(UNDEFINED)'],
    ['$$(POD_NAME)', '$(POD_NAME)'],
    ['$$$(POD_NAME)', '$main-0'],
    ['x$(EMPTY)y', 'xy'],
    ['$(POD_NAME', '$(POD_NAME'],
    ['cost $5', 'cost $5'],
    ['trailing $', 'trailing $'],
    ['$()', '$()'],
  ])('%s -> %s', (input, expected) => {
    expect(expandVars(input, vars)).toBe(expected);
  });
});

describe('the one image', () => {
  const node = process.execPath;
  // the repository's build, as containers see it: mounted at IMAGE_ROOT, wherever the checkout is
  const etcdTs = `${IMAGE_ROOT}/dist/src/bin/etcd-ts.js`;
  test.each(['etcd-ts', 'etcd-ts:0.1.0', 'ghcr.io/example/etcd-ts:1.2.3', 'localhost:5000/etcd-ts', 'etcd-ts@sha256:0123abcd'])('%s runs the built etcd-ts', (image) => {
    expect(imageEntrypoint(image, undefined)).toEqual([node, etcdTs]);
    expect(imageEntrypoint(image, ['etcd-ts'])).toEqual([node, etcdTs]);
    expect(imageEntrypoint(image, ['/usr/local/bin/etcd-ts', 'snapshot', 'status'])).toEqual([node, etcdTs, 'snapshot', 'status']);
  });
  test('etcd-ts-operator is the image\'s second executable, run by command', () => {
    expect(imageEntrypoint('etcd-ts:0.1.0', ['etcd-ts-operator', '--x'])).toEqual([node, `${IMAGE_ROOT}/dist/operator/main.js`, '--x']);
    expect(imageEntrypoint('registry.example.com/etcd-ts:0.1.0', ['/usr/local/bin/etcd-ts-operator'])).toEqual([node, `${IMAGE_ROOT}/dist/operator/main.js`]);
  });
  test.each(['busybox:1.36', 'etcd-ts-operator:0.1.0', 'quay.io/coreos/etcd:v3.6.0', ''])('%s cannot be pulled', (image) => {
    expect(() => imageEntrypoint(image, undefined)).toThrow(expect.objectContaining({ reason: 'ErrImagePull' }));
    expect(() => imageEntrypoint(image, undefined)).toThrow(/the test kubelet runs only the etcd-ts image/);
  });
  test('a command the image does not have', () => {
    expect(() => imageEntrypoint('etcd-ts:0.1.0', ['sh', '-c', 'true'])).toThrow(expect.objectContaining({ reason: 'RunContainerError' }));
    expect(path.relative(repoRoot(), etcdTsBin())).toBe(path.join('dist', 'src', 'bin', 'etcd-ts.js'));
  });
});

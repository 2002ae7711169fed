// The test kubelet's pure parts: Kubernetes' $(VAR) expansion, the mountPath rewriting that stands in for
// mounts, and the one image it runs. No control plane, no root.
import * as path from 'path';
import { etcdTsBin } from '../helpers';
import { expandVars, imageEntrypoint, rewriteMountPaths } from './kubelet';

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

describe('mountPath rewriting', () => {
  const mounts = [
    { mountPath: '/var/lib/etcd-ts', hostDir: '/tmp/kubelet/volumes/pvc-1' },
    { mountPath: '/tmp', hostDir: '/tmp/kubelet/pods/u/volumes/tmp' },
  ];
  test.each([
    ['--data-dir=/var/lib/etcd-ts/data', '--data-dir=/tmp/kubelet/volumes/pvc-1/data'],
    ['/var/lib/etcd-ts', '/tmp/kubelet/volumes/pvc-1'],
    ['/tmp', '/tmp/kubelet/pods/u/volumes/tmp'],
    // one pass: the host dir of the first mount (under /tmp) is not rewritten again by the /tmp mount
    ['--a=/var/lib/etcd-ts/x,/tmp/y', '--a=/tmp/kubelet/volumes/pvc-1/x,/tmp/kubelet/pods/u/volumes/tmp/y'],
    ['--b=/var/lib/etcd-ts-other', '--b=/var/lib/etcd-ts-other'],
    ['http://host/tmp', 'http://host/tmp'],
    ['--listen-client-urls=http://0.0.0.0:2379', '--listen-client-urls=http://0.0.0.0:2379'],
  ])('%s -> %s', (input, expected) => {
    expect(rewriteMountPaths(input, mounts)).toBe(expected);
  });
});

describe('the one image', () => {
  const node = process.execPath;
  test.each(['etcd-ts', 'etcd-ts:0.1.0', 'ghcr.io/example/etcd-ts:1.2.3', 'localhost:5000/etcd-ts', 'etcd-ts@sha256:0123abcd'])('%s runs the built etcd-ts', (image) => {
    expect(imageEntrypoint(image, undefined)).toEqual([node, etcdTsBin()]);
    expect(imageEntrypoint(image, ['etcd-ts'])).toEqual([node, etcdTsBin()]);
    expect(imageEntrypoint(image, ['/usr/local/bin/etcd-ts', 'snapshot', 'status'])).toEqual([node, etcdTsBin(), 'snapshot', 'status']);
  });
  test.each(['busybox:1.36', 'etcd-ts-operator:0.1.0', 'quay.io/coreos/etcd:v3.6.0', ''])('%s cannot be pulled', (image) => {
    expect(() => imageEntrypoint(image, undefined)).toThrow(expect.objectContaining({ reason: 'ErrImagePull' }));
    expect(() => imageEntrypoint(image, undefined)).toThrow(/the test kubelet runs only the etcd-ts image/);
  });
  test('a command the image does not have', () => {
    expect(() => imageEntrypoint('etcd-ts:0.1.0', ['sh', '-c', 'true'])).toThrow(expect.objectContaining({ reason: 'RunContainerError' }));
    expect(path.basename(etcdTsBin())).toBe('etcd-ts.js');
  });
});

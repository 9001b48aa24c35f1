/**
 * The double against rclnodejs 2.2's JavaScript. The parts of rclnodejs that need no native
 * addon (lib/parameter.js, lib/qos.js, lib/qos_overriding_options.js) are loaded and compared
 * with the double directly; the rest (lifecycle states, parameter overrides, setParameter
 * refusals, option handling) pins behaviour read from lib/lifecycle.js and lib/node.js.
 */
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { describe, expect, it } from 'vitest';
import type * as rcl from 'rclnodejs';
import { messageClass, PARAMETER_TYPE } from '../../../src/transports/ros/api.js';
import { createRosDouble, rclOverride } from './double.js';

interface RealParameterModule {
  Parameter: new (name: string, type: number, value: unknown) => { value: unknown; type: number };
  ParameterDescriptor: new (
    name: string,
    type: number,
    description?: string,
    readOnly?: boolean,
  ) => { validateParameter(p: unknown): void };
}
interface RealQoSModule {
  _resolveQoS(qos: unknown): { depth: number; reliability: number; history: number };
  declareQosParameters(
    entity: string,
    node: unknown,
    topic: string,
    qos: unknown,
    options: unknown,
  ): void;
  QoSOverridingOptions: { withDefaultPolicies(): unknown };
}

const lib = join(dirname(createRequire(import.meta.url).resolve('rclnodejs/package.json')), 'lib');
async function real<T>(file: string): Promise<T> {
  return (await import(pathToFileURL(join(lib, file)).href)) as T;
}

describe('the rclnodejs double follows rclnodejs 2.2 JavaScript', () => {
  it('lifecycle states have id and label only (no asMessage)', () => {
    const { api } = createRosDouble();
    const node = new api.lifecycle.LifecycleNode('n');
    const state = node.currentState as unknown as Record<string, unknown>;
    expect({ ...state }).toEqual({ id: 1, label: 'unconfigured' });
    expect(state.asMessage).toBeUndefined();
    expect({ ...node.configure() }).toEqual({ id: 2, label: 'inactive' });
  });

  it('a transition callback that throws ends in unconfigured (error processing succeeds)', () => {
    const { api, nodes } = createRosDouble();
    const node = new api.lifecycle.LifecycleNode('n');
    node.registerOnConfigure(() => {
      throw new Error('boom');
    });
    expect(node.configure().label).toBe('unconfigured');
    expect(nodes[0]?.errors).toHaveLength(1);
  });

  it.skipIf(lib === '')(
    'Parameter: an integer becomes a BigInt, as in lib/parameter.js',
    async () => {
      const { Parameter } = await real<RealParameterModule>('parameter.js');
      const { api } = createRosDouble();
      expect(typeof new Parameter('a', 2, 1).value).toBe('bigint');
      expect(typeof new api.Parameter('a', PARAMETER_TYPE.integer, 1).value).toBe('bigint');
    },
  );

  it.skipIf(lib === '')(
    'a descriptor refuses a parameter of another type, as lib/parameter.js does',
    async () => {
      const m = await real<RealParameterModule>('parameter.js');
      const { api } = createRosDouble();
      const realInt = new m.Parameter('k', 2, 1);
      expect(() => {
        new m.ParameterDescriptor('k', 3).validateParameter(realInt);
      }).toThrow();
      const doubleInt = new api.Parameter('k', PARAMETER_TYPE.integer, 1n);
      expect(() => {
        new api.ParameterDescriptor('k', PARAMETER_TYPE.double).validateParameter(doubleInt);
      }).toThrow();
    },
  );

  it.skipIf(lib === '')(
    'the sensor-data profile resolves to depth 5 best effort, as lib/qos_overriding_options.js',
    async () => {
      const q = await real<RealQoSModule>('qos_overriding_options.js');
      const realQos = q._resolveQoS('qos_profile_sensor_data');
      const { api, nodes } = createRosDouble();
      const node = new api.lifecycle.LifecycleNode('n');
      const options = {
        qos: api.QoS.profileSensorData,
        qosOverridingOptions: api.QoSOverridingOptions.withDefaultPolicies(),
      };
      node.createSubscription(
        messageClass('sensor_msgs/msg/Image'),
        '/cam',
        options,
        () => undefined,
      );
      expect(options.qos).toMatchObject({
        depth: realQos.depth,
        reliability: realQos.reliability,
        history: realQos.history,
      });
      expect(realQos.depth).toBe(5);
      // the read-only QoS parameters it declares, as the real declareQosParameters does on the double
      expect(nodes[0]?.descriptors.get('qos_overrides./cam.subscription.depth')?.readOnly).toBe(
        true,
      );
      const other = createRosDouble().api;
      const otherNode = new other.lifecycle.LifecycleNode('m');
      const qos = q._resolveQoS('qos_profile_sensor_data');
      q.declareQosParameters(
        'subscription',
        otherNode,
        '/cam',
        qos,
        q.QoSOverridingOptions.withDefaultPolicies(),
      );
      expect(otherNode.getParameter('qos_overrides./cam.subscription.depth').value).toBe(5n);
    },
  );

  it('fills in and mutates the options object it is given, QoS overrides included', () => {
    const { api } = createRosDouble({ 'qos_overrides./a.publisher.depth': '3' });
    const node = new api.lifecycle.LifecycleNode('n');
    const Q = api.QoS;
    const shared = new Q(Q.HistoryPolicy.RMW_QOS_POLICY_HISTORY_KEEP_LAST, 10);
    const options: rcl.Options = {
      qos: shared,
      qosOverridingOptions: api.QoSOverridingOptions.withDefaultPolicies(),
    };
    node.createPublisher('std_msgs/msg/String', '/a', options);
    expect((options as Record<string, unknown>).enableTypedArray).toBe(true);
    expect(shared.depth).toBe(3); // the override was written into the caller's QoS object
  });

  it('an override replaces the declared parameter with the type rcl parsed, then is checked', () => {
    const { api } = createRosDouble({ rate: '20' });
    const node = new api.lifecycle.LifecycleNode('n');
    expect(() =>
      node.declareParameter(
        new api.Parameter('rate', PARAMETER_TYPE.double, 10),
        new api.ParameterDescriptor('rate', PARAMETER_TYPE.double),
      ),
    ).toThrow('Parameter rate does not  readonly'); // rclnodejs's own wording
    expect(rclOverride('x', '[1, 2]').type).toBe(PARAMETER_TYPE.integerArray);
    expect(rclOverride('x', '[1.0, 2.0]').type).toBe(PARAMETER_TYPE.doubleArray);
    expect(rclOverride('x', 'true').value).toBe(true);
  });

  it('setParameter refuses undeclared and read-only names', () => {
    const { api, nodes } = createRosDouble();
    const node = new api.lifecycle.LifecycleNode('n');
    node.declareParameter(
      new api.Parameter('fixed', PARAMETER_TYPE.bool, true),
      new api.ParameterDescriptor('fixed', PARAMETER_TYPE.bool, '', true),
    );
    const n = nodes[0];
    expect(n?.setParameter(new api.Parameter('nope', PARAMETER_TYPE.bool, true))).toEqual({
      successful: false,
      reason: 'Parameter nope has not been declared',
    });
    expect(n?.setParameter(new api.Parameter('fixed', PARAMETER_TYPE.bool, false))).toEqual({
      successful: false,
      reason: 'Parameter fixed is readonly',
    });
    // use_sim_time is declared by every node (lib/time_source.js)
    expect(n?.getParameter('use_sim_time').value).toBe(false);
  });
});

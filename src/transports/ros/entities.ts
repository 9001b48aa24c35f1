/**
 * The node's ROS entities between configure and cleanup: its publishers, subscriptions and the
 * diagnostics timer, each with the QoS the README documents.
 */
import type * as rcl from 'rclnodejs';
import {
  messageClass,
  type RosApi,
  type RosLifecycleNode,
  type RosPublisher,
  type RosSubscription,
  type RosTimer,
} from './api.js';
import {
  MESSAGE_TYPES,
  type RosCompressedImage,
  type RosImage,
  type RosJointState,
  type RosString,
} from './messages.js';
import type { CameraPlan } from './cameras.js';
import type { RosNodeOptions } from './options.js';

/** The node's publishers. */
export interface NodePublishers {
  readonly trajectory: RosPublisher;
  readonly command: RosPublisher;
  readonly raw: RosPublisher;
  readonly diagnostics: RosPublisher;
  readonly processingTime: RosPublisher;
  readonly prunedImage: RosPublisher | undefined;
}

/** What the node does with what arrives; `feeds` is true for a camera the model sees. */
export interface EntityHandlers {
  image(camera: string, feeds: boolean, message: RosImage): void;
  compressed(camera: string, feeds: boolean, message: RosCompressedImage): void;
  instruction(message: RosString): void;
  jointState(message: RosJointState): void;
  diagnosticsPeriod(): void;
}

/** Reliable, keep last `depth`, transient local or volatile. */
export function reliableQos(ros: RosApi, depth: number, transientLocal: boolean): rcl.QoS {
  const Q = ros.QoS;
  return new Q(
    Q.HistoryPolicy.RMW_QOS_POLICY_HISTORY_KEEP_LAST,
    depth,
    Q.ReliabilityPolicy.RMW_QOS_POLICY_RELIABILITY_RELIABLE,
    transientLocal
      ? Q.DurabilityPolicy.RMW_QOS_POLICY_DURABILITY_TRANSIENT_LOCAL
      : Q.DurabilityPolicy.RMW_QOS_POLICY_DURABILITY_VOLATILE,
  );
}

/** Best effort, depth 1 (the node only uses the latest frame; rclnodejs's sensor-data profile is depth 5). */
export function sensorDataQos(ros: RosApi): rcl.QoS {
  const Q = ros.QoS;
  return new Q(
    Q.HistoryPolicy.RMW_QOS_POLICY_HISTORY_KEEP_LAST,
    1,
    Q.ReliabilityPolicy.RMW_QOS_POLICY_RELIABILITY_BEST_EFFORT,
    Q.DurabilityPolicy.RMW_QOS_POLICY_DURABILITY_VOLATILE,
  );
}

/** The publishers, subscriptions and diagnostics timer created at configure. */
export class NodeEntities {
  readonly pub: NodePublishers;
  readonly #node: RosLifecycleNode;
  readonly #publishers: RosPublisher[] = [];
  readonly #subscriptions: RosSubscription[] = [];
  readonly #diagnosticsTimer: RosTimer;

  constructor(
    ros: RosApi,
    node: RosLifecycleNode,
    o: RosNodeOptions,
    cameras: CameraPlan,
    on: EntityHandlers,
  ) {
    this.#node = node;
    // rclnodejs fills in the options object it is given and writes QoS overrides into its QoS
    // object, so every entity gets options and a QoS of its own. History, depth and reliability
    // can be overridden the ROS 2 way, e.g.
    // `-p qos_overrides./camera/image_raw.subscription.reliability:=reliable`.
    const overridable = (qos: () => rcl.QoS): rcl.Options => ({
      qos: qos(),
      qosOverridingOptions: ros.QoSOverridingOptions.withDefaultPolicies(),
    });
    const actionQos = (): rcl.QoS => reliableQos(ros, o.qos.actionDepth, false);
    const pub = (type: string, topic: string, qos: () => rcl.QoS): RosPublisher => {
      const p = node.createPublisher(messageClass(type), topic, overridable(qos));
      this.#publishers.push(p);
      return p;
    };
    this.pub = {
      trajectory: pub(MESSAGE_TYPES.jointTrajectory, '~/out/action_chunk', actionQos),
      command: pub(MESSAGE_TYPES.float64MultiArray, '~/out/command', actionQos),
      raw: pub(MESSAGE_TYPES.float32MultiArray, '~/out/action_chunk_raw', actionQos),
      diagnostics: pub(MESSAGE_TYPES.diagnosticArray, '/diagnostics', () =>
        reliableQos(ros, 10, false),
      ),
      processingTime: pub(MESSAGE_TYPES.float64, '~/debug/processing_time_ms', () =>
        reliableQos(ros, 1, false),
      ),
      prunedImage: o.publishPrunedImage
        ? pub(MESSAGE_TYPES.image, '~/debug/pruned_image', () => reliableQos(ros, 1, false))
        : undefined,
    };
    const imageQos = (): rcl.Options =>
      overridable(() =>
        o.qos.image === 'sensor_data' ? sensorDataQos(ros) : reliableQos(ros, 1, false),
      );
    for (const camera of cameras.subscribed) {
      const feeds = cameras.inputs.includes(camera);
      this.#subscriptions.push(
        o.imageTransport === 'compressed'
          ? node.createSubscription(
              messageClass(MESSAGE_TYPES.compressedImage),
              `~/in/${camera}/compressed`,
              imageQos(),
              (m: RosCompressedImage) => {
                on.compressed(camera, feeds, m);
              },
            )
          : node.createSubscription(
              messageClass(MESSAGE_TYPES.image),
              `~/in/${camera}`,
              imageQos(),
              (m: RosImage) => {
                on.image(camera, feeds, m);
              },
            ),
      );
    }
    this.#subscriptions.push(
      node.createSubscription(
        messageClass(MESSAGE_TYPES.string),
        '~/in/instruction',
        overridable(() => reliableQos(ros, 1, true)),
        (m: RosString) => {
          on.instruction(m);
        },
      ),
      node.createSubscription(
        messageClass(MESSAGE_TYPES.jointState),
        '~/in/joint_states',
        overridable(() => reliableQos(ros, 10, false)),
        (m: RosJointState) => {
          on.jointState(m);
        },
      ),
    );
    this.#diagnosticsTimer = node.createTimer(
      BigInt(Math.round(o.diagnostics.periodMs * 1e6)),
      () => {
        on.diagnosticsPeriod();
      },
    );
  }

  /** Destroy every entity (cleanup, shutdown). */
  destroy(): void {
    for (const p of this.#publishers) this.#node.destroyPublisher(p);
    for (const s of this.#subscriptions) this.#node.destroySubscription(s);
    this.#node.destroyTimer(this.#diagnosticsTimer);
    this.#publishers.length = 0;
    this.#subscriptions.length = 0;
  }
}

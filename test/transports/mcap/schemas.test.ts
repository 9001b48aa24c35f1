import { MessageReader } from '@foxglove/rosmsg2-serialization';
import { ros2jazzy } from '@foxglove/rosmsg-msgs-common';
import { describe, expect, it } from 'vitest';
import {
  cdrReader,
  cdrWriter,
  parseSchema,
  schemaText,
  SCHEMA_SEPARATOR,
} from '../../../src/transports/mcap/index.js';

const header = { stamp: { sec: 1_700_000_000, nanosec: 123_456_789 }, frame_id: 'camera' };

/** One message of each type the transport writes, with the standard definitions it must match. */
const CASES: [string, (keyof typeof ros2jazzy)[], Record<string, unknown>][] = [
  ['std_msgs/msg/String', ['std_msgs/String'], { data: 'pick up the red block' }],
  [
    'sensor_msgs/msg/Image',
    ['sensor_msgs/Image', 'std_msgs/Header'],
    {
      header,
      height: 2,
      width: 1,
      encoding: 'rgb8',
      is_bigendian: 0,
      step: 3,
      data: new Uint8Array([1, 2, 3, 4, 5, 6]),
    },
  ],
  [
    'sensor_msgs/msg/CompressedImage',
    ['sensor_msgs/CompressedImage', 'std_msgs/Header'],
    { header, format: 'jpeg', data: new Uint8Array([0xff, 0xd8]) },
  ],
  [
    'sensor_msgs/msg/JointState',
    ['sensor_msgs/JointState', 'std_msgs/Header'],
    {
      header,
      name: ['x', 'y'],
      position: new Float64Array([0.25, 0.75]),
      velocity: new Float64Array([]),
      effort: new Float64Array([]),
    },
  ],
  [
    'std_msgs/msg/Float32MultiArray',
    ['std_msgs/Float32MultiArray', 'std_msgs/MultiArrayLayout', 'std_msgs/MultiArrayDimension'],
    {
      layout: { dim: [{ label: 'horizon', size: 1, stride: 2 }], data_offset: 0 },
      data: new Float32Array([0.5, 0.25]),
    },
  ],
  [
    'trajectory_msgs/msg/JointTrajectory',
    ['trajectory_msgs/JointTrajectory', 'std_msgs/Header', 'trajectory_msgs/JointTrajectoryPoint'],
    {
      header,
      joint_names: ['x', 'y'],
      points: [
        {
          positions: new Float64Array([0.5, 0.5]),
          velocities: new Float64Array([]),
          accelerations: new Float64Array([]),
          effort: new Float64Array([]),
          time_from_start: { sec: 0, nanosec: 100_000_000 },
        },
      ],
    },
  ],
  [
    'diagnostic_msgs/msg/DiagnosticArray',
    [
      'diagnostic_msgs/DiagnosticArray',
      'std_msgs/Header',
      'diagnostic_msgs/DiagnosticStatus',
      'diagnostic_msgs/KeyValue',
    ],
    {
      header,
      status: [
        { level: 1, name: 'n', message: 'm', hardware_id: 'h', values: [{ key: 'k', value: 'v' }] },
      ],
    },
  ],
];

describe('schemas', () => {
  it.each(CASES)('%s: written CDR decodes with the standard definitions', (type, defs, msg) => {
    const bytes = cdrWriter(type).writeMessage(msg);
    const standard = new MessageReader(defs.map((d) => ros2jazzy[d]));
    expect(standard.readMessage(bytes)).toEqual(msg);
    expect(cdrReader(schemaText(type)).readMessage(bytes)).toEqual(msg);
  });

  it('lays out dependencies as rosbag2 does: one MSG section each, depth first, no repeats', () => {
    const text = schemaText('trajectory_msgs/msg/JointTrajectory');
    const sections = text.split(`${SCHEMA_SEPARATOR}\n`);
    expect(sections[0]).toBe(
      'std_msgs/Header header\nstring[] joint_names\nJointTrajectoryPoint[] points\n',
    );
    expect(sections.slice(1).map((s) => s.split('\n')[0])).toEqual([
      'MSG: std_msgs/Header',
      'MSG: builtin_interfaces/Time',
      'MSG: trajectory_msgs/JointTrajectoryPoint',
      'MSG: builtin_interfaces/Duration',
    ]);
    expect(parseSchema(text)[0]?.definitions.map((d) => d.type)).toEqual([
      'std_msgs/Header',
      'string',
      'trajectory_msgs/JointTrajectoryPoint',
    ]);
  });

  it('refuses a type it has no definition of', () => {
    expect(() => schemaText('geometry_msgs/msg/Pose')).toThrow(RangeError);
  });
});

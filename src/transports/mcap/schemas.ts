/**
 * ROS 2 message definitions the MCAP transport writes, as `ros2msg` schema text in the layout
 * rosbag2 stores: the main definition, then one `MSG: pkg/Type` section per dependency.
 */

import { parse } from '@foxglove/rosmsg';
import { MessageReader, MessageWriter } from '@foxglove/rosmsg2-serialization';

type MessageDefinition = ReturnType<typeof parse>[number];

/** The separator rosbag2 (and ROS 2's type support) puts between definitions. */
export const SCHEMA_SEPARATOR = '='.repeat(80);

interface MsgSpec {
  /** The body of the .msg file (comments dropped), field types as ROS 2 writes them. */
  readonly text: string;
  /** Complex field types, fully qualified (pkg/Type), in field order. */
  readonly deps: readonly string[];
}

const MSGS: ReadonlyMap<string, MsgSpec> = new Map<string, MsgSpec>([
  ['builtin_interfaces/Time', { text: 'int32 sec\nuint32 nanosec\n', deps: [] }],
  ['builtin_interfaces/Duration', { text: 'int32 sec\nuint32 nanosec\n', deps: [] }],
  [
    'std_msgs/Header',
    { text: 'builtin_interfaces/Time stamp\nstring frame_id\n', deps: ['builtin_interfaces/Time'] },
  ],
  ['std_msgs/String', { text: 'string data\n', deps: [] }],
  [
    'std_msgs/MultiArrayDimension',
    { text: 'string label\nuint32 size\nuint32 stride\n', deps: [] },
  ],
  [
    'std_msgs/MultiArrayLayout',
    {
      text: 'MultiArrayDimension[] dim\nuint32 data_offset\n',
      deps: ['std_msgs/MultiArrayDimension'],
    },
  ],
  [
    'std_msgs/Float32MultiArray',
    { text: 'MultiArrayLayout layout\nfloat32[] data\n', deps: ['std_msgs/MultiArrayLayout'] },
  ],
  [
    'sensor_msgs/Image',
    {
      text: 'std_msgs/Header header\nuint32 height\nuint32 width\nstring encoding\nuint8 is_bigendian\nuint32 step\nuint8[] data\n',
      deps: ['std_msgs/Header'],
    },
  ],
  [
    'sensor_msgs/CompressedImage',
    {
      text: 'std_msgs/Header header\nstring format\nuint8[] data\n',
      deps: ['std_msgs/Header'],
    },
  ],
  [
    'sensor_msgs/JointState',
    {
      text: 'std_msgs/Header header\nstring[] name\nfloat64[] position\nfloat64[] velocity\nfloat64[] effort\n',
      deps: ['std_msgs/Header'],
    },
  ],
  [
    'trajectory_msgs/JointTrajectoryPoint',
    {
      text: 'float64[] positions\nfloat64[] velocities\nfloat64[] accelerations\nfloat64[] effort\nbuiltin_interfaces/Duration time_from_start\n',
      deps: ['builtin_interfaces/Duration'],
    },
  ],
  [
    'trajectory_msgs/JointTrajectory',
    {
      text: 'std_msgs/Header header\nstring[] joint_names\nJointTrajectoryPoint[] points\n',
      deps: ['std_msgs/Header', 'trajectory_msgs/JointTrajectoryPoint'],
    },
  ],
  ['diagnostic_msgs/KeyValue', { text: 'string key\nstring value\n', deps: [] }],
  [
    'diagnostic_msgs/DiagnosticStatus',
    {
      text: 'byte OK=0\nbyte WARN=1\nbyte ERROR=2\nbyte STALE=3\n\nbyte level\nstring name\nstring message\nstring hardware_id\nKeyValue[] values\n',
      deps: ['diagnostic_msgs/KeyValue'],
    },
  ],
  [
    'diagnostic_msgs/DiagnosticArray',
    {
      text: 'std_msgs/Header header\nDiagnosticStatus[] status\n',
      deps: ['std_msgs/Header', 'diagnostic_msgs/DiagnosticStatus'],
    },
  ],
]);

/** `sensor_msgs/msg/Image` → `sensor_msgs/Image`. */
export function shortTypeName(type: string): string {
  return type.replace('/msg/', '/');
}

/** `sensor_msgs/Image` → `sensor_msgs/msg/Image` (the name rosbag2 records). */
export function rosbagTypeName(type: string): string {
  const short = shortTypeName(type);
  const slash = short.indexOf('/');
  return `${short.slice(0, slash)}/msg/${short.slice(slash + 1)}`;
}

function specOf(type: string): MsgSpec {
  const spec = MSGS.get(shortTypeName(type));
  if (spec === undefined) throw new RangeError(`No built-in definition of ${type}`);
  return spec;
}

/** Dependencies of a type in depth-first order of first appearance. */
function dependencies(type: string, seen: Set<string>, out: string[]): void {
  for (const dep of specOf(type).deps) {
    if (seen.has(dep)) continue;
    seen.add(dep);
    out.push(dep);
    dependencies(dep, seen, out);
  }
}

/**
 * The full `ros2msg` schema text of a built-in type as rosbag2 writes it into an MCAP Schema
 * record: the definition followed by a `MSG: pkg/Type` section for each dependency.
 */
export function schemaText(type: string): string {
  const deps: string[] = [];
  dependencies(type, new Set([shortTypeName(type)]), deps);
  return [
    specOf(type).text,
    ...deps.map((dep) => `${SCHEMA_SEPARATOR}\nMSG: ${dep}\n${specOf(dep).text}`),
  ].join('');
}

/** Parse `ros2msg` schema text into definitions (main type first). */
export function parseSchema(text: string): MessageDefinition[] {
  return parse(text, { ros2: true });
}

const writers = new Map<string, MessageWriter>();

/** A CDR writer for a built-in type (cached). */
export function cdrWriter(type: string): MessageWriter {
  const key = shortTypeName(type);
  let writer = writers.get(key);
  if (writer === undefined) {
    writer = new MessageWriter(parseSchema(schemaText(key)));
    writers.set(key, writer);
  }
  return writer;
}

/** A CDR reader for schema text found in a file. */
export function cdrReader(text: string): MessageReader {
  return new MessageReader(parseSchema(text));
}

/** Nanoseconds → builtin_interfaces/Time. */
export function rosTime(ns: bigint): { sec: number; nanosec: number } {
  return { sec: Number(ns / 1_000_000_000n), nanosec: Number(ns % 1_000_000_000n) };
}

/** builtin_interfaces/Time → nanoseconds. */
export function nsOf(time: { sec: number; nanosec: number }): bigint {
  return BigInt(time.sec) * 1_000_000_000n + BigInt(time.nanosec);
}

/**
 * Writing rosbag2-compatible MCAP: profile `ros2`, `ros2msg` schemas with the full definition
 * text, CDR messages; a bag folder gets a metadata.yaml like rosbag2's.
 *
 * The metadata follows ROS 2 Jazzy's rosbag2 (rosbag2_storage/yaml.hpp and qos.cpp, metadata
 * version 9): every topic records the QoS its publisher offered, as a YAML sequence with
 * policies by name, in metadata.yaml and in the channel's `offered_qos_profiles`, and the MCAP
 * file carries the same metadata in its `rosbag2` metadata record (so a lone `.mcap` is read as
 * version 9 too). `ros2 bag play` offers that QoS, so a transient-local subscription (the node's
 * instruction) receives what was recorded on a transient-local topic.
 */

import { mkdir, open, readdir, writeFile, type FileHandle } from 'node:fs/promises';
import { basename, join } from 'node:path';
import { McapWriter, type IWritable } from '@mcap/core';
import { stringify as stringifyYaml } from 'yaml';
import type { OutputPath } from '../../util/paths.js';
import { BagError } from './errors.js';
import { cdrWriter, rosbagTypeName, schemaText } from './schemas.js';

export interface BagWriterOptions {
  /** A `.mcap` file, or a folder to create as a rosbag2 bag (`NAME_0.mcap` + metadata.yaml). */
  readonly path: string;
  /** Bytes per MCAP chunk; smaller chunks reach the disk sooner (default 256 KiB). */
  readonly chunkSize?: number;
}

const DEFAULTS = { chunkSize: 256 * 1024 } as const;

/** The rosbag2 metadata version of ROS 2 Jazzy, and the distro it is written for. */
export const ROSBAG2_METADATA_VERSION = 9;
export const ROSBAG2_DISTRO = 'jazzy';

/** The QoS a topic's publisher offered (recorded with the topic; `ros2 bag play` offers it). */
export interface OfferedQos {
  readonly reliability: 'reliable' | 'best_effort';
  readonly durability: 'volatile' | 'transient_local';
  /** History depth (keep last). */
  readonly depth: number;
}

/** Offered QoS profiles: a reliable stream, and a latched (transient local) last value. */
export const OFFERED_QOS = {
  reliable: { reliability: 'reliable', durability: 'volatile', depth: 10 },
  latched: { reliability: 'reliable', durability: 'transient_local', depth: 1 },
} as const satisfies Record<string, OfferedQos>;

/** rmw's "unspecified" duration (rclcpp's default deadline, lifespan and lease). */
const UNSPECIFIED = { sec: 0, nsec: 0 };

/** One offered QoS as rosbag2 version 9 writes it (rosbag2_storage/src/rosbag2_storage/qos.cpp). */
function qosProfile(q: OfferedQos): Record<string, unknown> {
  return {
    history: 'keep_last',
    depth: q.depth,
    reliability: q.reliability,
    durability: q.durability,
    deadline: UNSPECIFIED,
    lifespan: UNSPECIFIED,
    liveliness: 'automatic',
    liveliness_lease_duration: UNSPECIFIED,
    avoid_ros_namespace_conventions: false,
  };
}

interface TopicInfo {
  readonly channelId: number;
  readonly type: string;
  readonly qos: OfferedQos;
  count: number;
}

class FileWritable implements IWritable {
  readonly #handle: FileHandle;
  #position = 0n;

  constructor(handle: FileHandle) {
    this.#handle = handle;
  }
  async write(buffer: Uint8Array): Promise<void> {
    let done = 0;
    while (done < buffer.length) {
      const { bytesWritten } = await this.#handle.write(buffer, done, buffer.length - done);
      done += bytesWritten;
    }
    this.#position += BigInt(buffer.length);
  }
  position(): bigint {
    return this.#position;
  }
}

/**
 * What a bag output path writes, for the output-path checks: an `.mcap` file, or a folder that
 * must be new or empty (so no file in it is named).
 */
export function bagOutput(flag: string, path: string): OutputPath {
  return path.endsWith('.mcap') ? { flag, path } : { flag, path, files: [] };
}

/**
 * An MCAP writer for the built-in ROS 2 types. Calls must not overlap (await each).
 *
 * @example
 * const bag = await BagWriter.create({ path: 'out.mcap' });
 * await bag.write('/instruction', 'std_msgs/msg/String', { data: 'pick the red block' }, 0n);
 * await bag.close();
 */
export class BagWriter {
  /** The .mcap file being written. */
  readonly file: string;
  /** The bag folder, when writing one. */
  readonly folder: string | undefined;
  readonly #handle: FileHandle;
  readonly #writer: McapWriter;
  readonly #topics = new Map<string, TopicInfo>();
  readonly #schemas = new Map<string, number>();
  #start: bigint | undefined;
  #end = 0n;
  #closed = false;

  private constructor(file: string, folder: string | undefined, handle: FileHandle, chunk: number) {
    this.file = file;
    this.folder = folder;
    this.#handle = handle;
    this.#writer = new McapWriter({ writable: new FileWritable(handle), chunkSize: chunk });
  }

  static async create(options: BagWriterOptions): Promise<BagWriter> {
    let file = options.path;
    let folder: string | undefined;
    if (!options.path.endsWith('.mcap')) {
      folder = options.path;
      await mkdir(folder, { recursive: true });
      if ((await readdir(folder)).length > 0) {
        throw new BagError(`Expected a new or empty bag folder but ${folder} has files in it`, {
          field: 'out',
        });
      }
      file = join(folder, `${basename(folder)}_0.mcap`);
    }
    const handle = await open(file, 'w');
    const bag = new BagWriter(file, folder, handle, options.chunkSize ?? DEFAULTS.chunkSize);
    await bag.#writer.start({ profile: 'ros2', library: 'vla-node' });
    return bag;
  }

  /**
   * Serialise `message` as `type` (e.g. `sensor_msgs/msg/Image`) and write it on `topic`. `qos`
   * is what the topic's publisher offers (taken from a topic's first message).
   */
  async write(
    topic: string,
    type: string,
    message: unknown,
    logTime: bigint,
    qos: OfferedQos = OFFERED_QOS.reliable,
  ): Promise<void> {
    const info = this.#topics.get(topic) ?? (await this.#register(topic, type, qos));
    const data = cdrWriter(type).writeMessage(message);
    await this.#writer.addMessage({
      channelId: info.channelId,
      sequence: info.count,
      logTime,
      publishTime: logTime,
      data,
    });
    info.count++;
    this.#start = this.#start === undefined || logTime < this.#start ? logTime : this.#start;
    if (logTime > this.#end) this.#end = logTime;
  }

  /** Messages written per topic. */
  get counts(): ReadonlyMap<string, number> {
    return new Map([...this.#topics].map(([t, i]) => [t, i.count]));
  }

  async #register(topic: string, type: string, qos: OfferedQos): Promise<TopicInfo> {
    const name = rosbagTypeName(type);
    let schemaId = this.#schemas.get(name);
    if (schemaId === undefined) {
      schemaId = await this.#writer.registerSchema({
        name,
        encoding: 'ros2msg',
        data: new TextEncoder().encode(schemaText(name)),
      });
      this.#schemas.set(name, schemaId);
    }
    const channelId = await this.#writer.registerChannel({
      schemaId,
      topic,
      messageEncoding: 'cdr',
      metadata: new Map([
        ['offered_qos_profiles', stringifyYaml([qosProfile(qos)])],
        ['topic_type_hash', ''],
      ]),
    });
    const info: TopicInfo = { channelId, type: name, qos, count: 0 };
    this.#topics.set(topic, info);
    return info;
  }

  /** Finish the file (summary, footer) and, for a folder, write metadata.yaml. Idempotent. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    try {
      await this.#writer.addMetadata({
        name: 'rosbag2',
        metadata: new Map([['serialized_metadata', stringifyYaml(this.#bagMetadata())]]),
      });
      await this.#writer.end();
    } finally {
      await this.#handle.close();
    }
    if (this.folder !== undefined) {
      await writeFile(
        join(this.folder, 'metadata.yaml'),
        stringifyYaml({ rosbag2_bagfile_information: this.#bagMetadata() }),
      );
    }
  }

  /** rosbag2's BagMetadata, version 9 (rosbag2_storage/include/rosbag2_storage/yaml.hpp). */
  #bagMetadata(): Record<string, unknown> {
    const start = this.#start ?? 0n;
    const duration = this.#end - start;
    const total = [...this.#topics.values()].reduce((s, t) => s + t.count, 0);
    const name = basename(this.file);
    return {
      version: ROSBAG2_METADATA_VERSION,
      storage_identifier: 'mcap',
      duration: { nanoseconds: duration },
      starting_time: { nanoseconds_since_epoch: start },
      message_count: total,
      topics_with_message_count: [...this.#topics].map(([topic, t]) => ({
        topic_metadata: {
          name: topic,
          type: t.type,
          serialization_format: 'cdr',
          offered_qos_profiles: [qosProfile(t.qos)],
          type_description_hash: '',
        },
        message_count: t.count,
      })),
      compression_format: '',
      compression_mode: '',
      relative_file_paths: [name],
      files: [
        {
          path: name,
          starting_time: { nanoseconds_since_epoch: start },
          duration: { nanoseconds: duration },
          message_count: total,
        },
      ],
      custom_data: {},
      ros_distro: ROSBAG2_DISTRO,
    };
  }
}

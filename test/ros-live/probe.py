#!/usr/bin/python3
"""The live-graph tests' ROS 2 side: an rclpy node driven by JSON lines on stdin.

The tests drive vla_node only through ROS: this process publishes what a robot's camera driver,
joint state broadcaster, task planner and simulator clock would, and reports every message the
node publishes as a JSON line on stdout. One command per stdin line, e.g.

    {"op": "image", "id": "cam", "topic": "/cam", "file": "/tmp/f.rgb", "encoding": "rgb8",
     "width": 640, "height": 480, "reliability": "best_effort", "rate_hz": 10}
    {"op": "compressed", "id": "jpg", "topic": "/cam/compressed", "file": "/tmp/f.jpg", ...}
    {"op": "instruction", "id": "task", "topic": "/task", "data": "reach the red block"}
    {"op": "joint_states", "id": "js", "topic": "/js", "names": ["x"], "positions": [0.5]}
    {"op": "clock", "id": "clock", "start_sec": 1000, "rate_hz": 50, "step_ns": 20000000}
    {"op": "subscribe", "topic": "/out/command", "type": "command"}
    {"op": "stop", "id": "cam"}

Each publisher repeats at `rate_hz` (0: once, kept alive so that transient local late joiners
get it). Lines out: {"event": "ready"}, {"event": "ok", "op": ...} after each command, and
{"event": "message", "topic": ..., ...} for each message received. With a "clock" publisher
running, the image, joint state headers are stamped with its time (stamps follow /clock).
"""

import json
import sys
import threading

import rclpy
from rclpy.executors import SingleThreadedExecutor
from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy

from builtin_interfaces.msg import Time
from diagnostic_msgs.msg import DiagnosticArray
from rosgraph_msgs.msg import Clock
from sensor_msgs.msg import CompressedImage, Image, JointState
from std_msgs.msg import Float32MultiArray, Float64, Float64MultiArray, String
from trajectory_msgs.msg import JointTrajectory

OUT_LOCK = threading.Lock()


def emit(event):
    with OUT_LOCK:
        sys.stdout.write(json.dumps(event) + '\n')
        sys.stdout.flush()


def qos(cmd, depth=1):
    return QoSProfile(
        history=HistoryPolicy.KEEP_LAST,
        depth=cmd.get('depth', depth),
        reliability=(
            ReliabilityPolicy.BEST_EFFORT
            if cmd.get('reliability', 'reliable') == 'best_effort'
            else ReliabilityPolicy.RELIABLE
        ),
        durability=(
            DurabilityPolicy.TRANSIENT_LOCAL
            if cmd.get('durability', 'volatile') == 'transient_local'
            else DurabilityPolicy.VOLATILE
        ),
    )


def stamp_dict(t):
    return {'sec': t.sec, 'nanosec': t.nanosec}


def header_dict(h):
    return {'stamp': stamp_dict(h.stamp), 'frame_id': h.frame_id}


def layout_dict(layout):
    return {
        'dim': [{'label': d.label, 'size': d.size, 'stride': d.stride} for d in layout.dim],
        'data_offset': layout.data_offset,
    }


SUBSCRIPTIONS = {
    'trajectory': (
        JointTrajectory,
        lambda m: {
            'header': header_dict(m.header),
            'joint_names': list(m.joint_names),
            'points': [
                {
                    'positions': list(p.positions),
                    'time_from_start': {
                        'sec': p.time_from_start.sec,
                        'nanosec': p.time_from_start.nanosec,
                    },
                }
                for p in m.points
            ],
        },
    ),
    'command': (
        Float64MultiArray,
        lambda m: {'layout': layout_dict(m.layout), 'data': list(m.data)},
    ),
    'raw': (
        Float32MultiArray,
        lambda m: {'layout': layout_dict(m.layout), 'data': [float(v) for v in m.data]},
    ),
    'float64': (Float64, lambda m: {'data': m.data}),
    'image': (
        Image,
        lambda m: {
            'header': header_dict(m.header),
            'width': m.width,
            'height': m.height,
            'encoding': m.encoding,
            'step': m.step,
            'bytes': len(m.data),
        },
    ),
    'diagnostics': (
        DiagnosticArray,
        lambda m: {
            'header': header_dict(m.header),
            'status': [
                {
                    'level': int.from_bytes(s.level, 'little')
                    if isinstance(s.level, bytes)
                    else int(s.level),
                    'name': s.name,
                    'message': s.message,
                    'hardware_id': s.hardware_id,
                    'values': {kv.key: kv.value for kv in s.values},
                }
                for s in m.status
            ],
        },
    ),
}


class Probe:
    def __init__(self, node):
        self.node = node
        self.entities = {}
        self.clock_time = None  # (sec, nanosec) of the last /clock published

    def now(self):
        if self.clock_time is not None:
            return Time(sec=self.clock_time[0], nanosec=self.clock_time[1])
        return self.node.get_clock().now().to_msg()

    def add(self, cmd, publisher, make):
        """Publish make() now and every 1/rate_hz s (0: once); keep the publisher alive."""
        self.stop(cmd['id'])

        def publish():
            publisher.publish(make())

        rate = float(cmd.get('rate_hz', 0))
        timer = self.node.create_timer(1.0 / rate, publish) if rate > 0 else None
        publish()
        self.entities[cmd['id']] = (publisher, timer)

    def stop(self, ident):
        entity = self.entities.pop(ident, None)
        if entity is None:
            return
        publisher, timer = entity
        if timer is not None:
            self.node.destroy_timer(timer)
        if publisher is not None:
            self.node.destroy_publisher(publisher)

    def handle(self, cmd):
        op = cmd['op']
        if op == 'image':
            with open(cmd['file'], 'rb') as f:
                data = f.read()
            width, height = cmd['width'], cmd['height']
            channels = {'mono8': 1, 'rgb8': 3, 'bgr8': 3, 'rgba8': 4, 'bgra8': 4}.get(
                cmd['encoding'], 3
            )
            step = cmd.get('step', width * channels)
            pub = self.node.create_publisher(Image, cmd['topic'], qos(cmd))

            def image():
                m = Image()
                m.header.stamp = self.now()
                m.header.frame_id = cmd.get('frame_id', 'camera')
                m.width, m.height, m.encoding, m.step = width, height, cmd['encoding'], step
                m.is_bigendian = 0
                m.data = data
                return m

            self.add(cmd, pub, image)
        elif op == 'compressed':
            with open(cmd['file'], 'rb') as f:
                data = f.read()
            pub = self.node.create_publisher(CompressedImage, cmd['topic'], qos(cmd))

            def compressed():
                m = CompressedImage()
                m.header.stamp = self.now()
                m.header.frame_id = cmd.get('frame_id', 'camera')
                m.format = cmd.get('format', 'jpeg')
                m.data = data
                return m

            self.add(cmd, pub, compressed)
        elif op == 'instruction':
            cmd.setdefault('durability', 'transient_local')
            pub = self.node.create_publisher(String, cmd['topic'], qos(cmd))
            self.add(cmd, pub, lambda: String(data=cmd['data']))
        elif op == 'joint_states':
            pub = self.node.create_publisher(JointState, cmd['topic'], qos(cmd, 10))

            def joint_states():
                m = JointState()
                m.header.stamp = self.now()
                m.name = cmd['names']
                m.position = [float(v) for v in cmd['positions']]
                return m

            self.add(cmd, pub, joint_states)
        elif op == 'clock':
            pub = self.node.create_publisher(Clock, '/clock', qos(cmd, 10))
            step = int(cmd.get('step_ns', 10_000_000))
            state = {'ns': int(cmd.get('start_sec', 1000)) * 1_000_000_000}

            def clock():
                state['ns'] += step
                self.clock_time = (state['ns'] // 1_000_000_000, state['ns'] % 1_000_000_000)
                return Clock(clock=Time(sec=self.clock_time[0], nanosec=self.clock_time[1]))

            self.add(cmd, pub, clock)
        elif op == 'subscribe':
            kind, convert = SUBSCRIPTIONS[cmd['type']]
            topic = cmd['topic']

            def received(m, topic=topic, convert=convert):
                emit({'event': 'message', 'topic': topic, **convert(m)})

            sub = self.node.create_subscription(kind, topic, received, qos(cmd, 10))
            self.entities[cmd.get('id', 'sub:' + topic)] = (None, None)
            self.entities.setdefault('_subs', []).append(sub)
        elif op == 'stop':
            self.stop(cmd['id'])
        else:
            raise ValueError('unknown op ' + op)
        emit({'event': 'ok', 'op': op, 'id': cmd.get('id')})


def main():
    rclpy.init()
    node = rclpy.create_node('vla_live_probe')
    probe = Probe(node)
    executor = SingleThreadedExecutor()
    executor.add_node(node)
    lines = []
    lock = threading.Lock()

    def read_stdin():
        for line in sys.stdin:
            with lock:
                lines.append(line)
        with lock:
            lines.append(None)

    threading.Thread(target=read_stdin, daemon=True).start()
    emit({'event': 'ready'})
    try:
        while rclpy.ok():
            executor.spin_once(timeout_sec=0.02)
            with lock:
                pending, lines[:] = lines[:], []
            for line in pending:
                if line is None:
                    return
                if not line.strip():
                    continue
                try:
                    probe.handle(json.loads(line))
                except Exception as error:  # reported to the test, which fails on it
                    emit({'event': 'error', 'error': repr(error), 'line': line.strip()})
    finally:
        node.destroy_node()
        rclpy.try_shutdown()


if __name__ == '__main__':
    main()

"""Start the vla-node ROS 2 node (a managed lifecycle node) with its private topics remapped.

    ros2 launch ./launch/vla_node.launch.py image_topic:=/camera/color/image_raw \
        joint_states_topic:=/joint_states action_topic:=/arm_controller/joint_trajectory

From a checkout the node runs `node bin/vla-node.js ros` (with ROS 2 sourced, run `npm ci` and
`(cd node_modules/rclnodejs && npx node-gyp rebuild -j max && node scripts/generate_messages.cjs)`
first). Installed by colcon
(`ros2 launch vla_node vla_node.launch.py`), it runs the lib/vla_node/vla_node wrapper, which
starts the node from the source tree where `npm ci` was run (see launch/README.md).
"""

import os

PACKAGE_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# Installed by colcon, PACKAGE_ROOT is <prefix>/share/vla_node and the wrapper <prefix>/lib/vla_node.
INSTALLED_WRAPPER = os.path.join(
    os.path.dirname(os.path.dirname(PACKAGE_ROOT)), 'lib', 'vla_node', 'vla_node'
)

ARGUMENTS = [
    ('node_name', 'vla_node', 'Name of the node'),
    ('namespace', '/', 'Namespace of the node'),
    (
        'params_file',
        os.path.join(PACKAGE_ROOT, 'config', 'vla_node.param.yaml'),
        'vla-node parameter file (the schema is schema/vla_node.schema.json)',
    ),
    ('image_topic', '/camera/image_raw', 'Camera topic the model sees (remapped to ~/in/image)'),
    (
        'camera_topics',
        '',
        'Several-camera (flow) models: comma-separated CAMERA=TOPIC pairs remapped to ~/in/CAMERA,'
        ' e.g. table=/table_cam/image_raw,wrist=/wrist_cam/image_raw',
    ),
    ('image_transport', 'raw', 'raw: sensor_msgs/Image; compressed: sensor_msgs/CompressedImage'),
    ('instruction_topic', '/vla/instruction', 'std_msgs/String instruction (transient local)'),
    ('joint_states_topic', '/joint_states', 'sensor_msgs/JointState of the robot'),
    ('action_topic', '/vla/action_chunk', 'trajectory_msgs/JointTrajectory: the merged plan'),
    ('command_topic', '/vla/command', 'std_msgs/Float64MultiArray: the command of each period'),
    ('action_raw_topic', '/vla/action_chunk_raw', 'std_msgs/Float32MultiArray: the raw chunk'),
    ('joint_names', '', 'Comma-separated joint names of the trajectory (default: the manifest)'),
    (
        'state_joint_names',
        '',
        'Comma-separated joints of joint_states_topic to read the state from, one per state'
        ' dimension (default: the manifest)',
    ),
    ('auto_activate', 'false', 'Configure and activate at start (no lifecycle manager)'),
    ('model', '', 'Model package folder (default: model.path of the parameter file)'),
    ('precision', '', 'fp32, fp16, int8 or auto (default: model.precision of the parameter file)'),
    ('use_sim_time', 'false', 'Use the /clock topic as ROS time (ROS parameter use_sim_time)'),
    ('node_executable', 'node', 'Node.js executable'),
]


def program(node_executable):
    """`node bin/vla-node.js ros` in a checkout (node_modules present), else the colcon wrapper."""
    checkout = os.path.isdir(os.path.join(PACKAGE_ROOT, 'node_modules'))
    if checkout or not os.path.isfile(INSTALLED_WRAPPER):
        return [node_executable, os.path.join(PACKAGE_ROOT, 'bin', 'vla-node.js'), 'ros']
    return [INSTALLED_WRAPPER]


def command_line(value):
    """The argv of the node for the launch arguments `value` (name -> text); no launch needed."""
    compressed = value['image_transport'] == 'compressed'
    image_in = '~/in/image/compressed' if compressed else '~/in/image'
    cmd = program(value['node_executable']) + [
        '--params',
        value['params_file'],
        '--image-transport',
        value['image_transport'],
    ]
    # Empty means: the parameter file's value stands.
    for flag, name in (
        ('--model', 'model'),
        ('--precision', 'precision'),
        ('--joint-names', 'joint_names'),
        ('--state-joint-names', 'state_joint_names'),
        ('--camera-topics', 'camera_topics'),
    ):
        if value[name]:
            cmd += [flag, value[name]]
    if value['auto_activate'].lower() in ('true', '1', 'yes'):
        cmd.append('--auto-activate')
    return cmd + [
        '--',
        '--ros-args',
        '-r', f"__node:={value['node_name']}",
        '-r', f"__ns:={value['namespace']}",
        '-r', f"{image_in}:={value['image_topic']}",
        '-r', f"~/in/instruction:={value['instruction_topic']}",
        '-r', f"~/in/joint_states:={value['joint_states_topic']}",
        '-r', f"~/out/action_chunk:={value['action_topic']}",
        '-r', f"~/out/command:={value['command_topic']}",
        '-r', f"~/out/action_chunk_raw:={value['action_raw_topic']}",
        '-p', f"use_sim_time:={value['use_sim_time']}",
    ]


def _command(context):
    from launch.actions import ExecuteProcess
    from launch.substitutions import LaunchConfiguration

    value = {name: LaunchConfiguration(name).perform(context) for name, _, _ in ARGUMENTS}
    return [
        ExecuteProcess(
            cmd=command_line(value),
            cwd=PACKAGE_ROOT,
            additional_env={'VLA_NODE_EXECUTABLE': value['node_executable']},
            name=value['node_name'],
            output='screen',
            emulate_tty=True,
            # ros2 launch sends SIGINT on Ctrl-C; the node shuts its lifecycle down and exits 0.
            sigterm_timeout='10',
        )
    ]


def generate_launch_description():
    # Imported here so that command_line() can be used (and tested) without ROS 2.
    from launch import LaunchDescription
    from launch.actions import DeclareLaunchArgument, OpaqueFunction

    return LaunchDescription(
        [
            DeclareLaunchArgument(name, default_value=default, description=description)
            for name, default, description in ARGUMENTS
        ]
        + [OpaqueFunction(function=_command)]
    )

using System.Runtime.CompilerServices;

// The daemon's few P/Invokes pass only blittable types, pointers and SafeHandles.
[assembly: DisableRuntimeMarshalling]
